//! A goridge RPC client (filled by the rpc/observability work).
