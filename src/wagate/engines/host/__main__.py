from wagate.engines.host.child import main

main()
