"""The store's contracts, one small module per concern; ``wagate.store.base.Store`` gathers them."""
