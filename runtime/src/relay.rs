//! Frame transport over pipes, TCP and unix sockets (in progress).
