"""The safety layer: policy, confirmations, audit log and the operation store."""
