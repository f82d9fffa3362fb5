// The reference of bench/credentials.py: Baileys' own useMultiFileAuthState under the same workload.
//
//   node bench/baileys/credentials.js --dir /tmp/x --sessions 10 --messages 2000 --key-bytes 1536 \
//       --contacts 50 --batch-every 100 --batch-keys 30
//
// Each session has its folder and its auth state, as a Baileys app keeps them; the sessions run concurrently.
// Per message a session stores one signal session record (``keys.set({session: ...})``, the contact's record
// rewritten), and every ``--batch-every`` messages a batch of new pre-keys (a key pair each), as Baileys uploads
// them. Every ``keys.set`` is awaited before the next, as the socket awaits it. Prints one JSON line.
'use strict'

const { randomBytes } = require('crypto')
const { join } = require('path')
const { useMultiFileAuthState } = require('@whiskeysockets/baileys')

function options() {
  const out = { dir: null, sessions: 10, messages: 2000, keyBytes: 1536, contacts: 50, batchEvery: 100, batchKeys: 30 }
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (!(name in out)) throw new Error(`unknown option ${args[i]}`)
    out[name] = name === 'dir' ? args[i + 1] : Number(args[i + 1])
  }
  if (!out.dir) throw new Error('--dir is required')
  return out
}

async function session(o, state) {
  let keys = 0
  let preKey = 1
  for (let n = 0; n < o.messages; n++) {
    const contact = `1555${String(n % o.contacts).padStart(7, '0')}.0`
    await state.keys.set({ session: { [contact]: randomBytes(o.keyBytes) } })
    keys += 1
    if ((n + 1) % o.batchEvery === 0) {
      const batch = {}
      for (let k = 0; k < o.batchKeys; k++) {
        batch[preKey++] = { private: randomBytes(32), public: randomBytes(32) }
      }
      await state.keys.set({ 'pre-key': batch })
      keys += o.batchKeys
    }
  }
  return keys
}

async function main() {
  const o = options()
  const states = []
  for (let i = 0; i < o.sessions; i++) {
    states.push((await useMultiFileAuthState(join(o.dir, `s${i}`))).state)
  }
  const started = process.hrtime.bigint()
  const counts = await Promise.all(states.map((state) => session(o, state)))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const keys = counts.reduce((a, b) => a + b, 0)
  const version = require('@whiskeysockets/baileys/package.json').version
  console.log(JSON.stringify({ baileys: version, keys, seconds, keys_per_s: keys / seconds }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
