//! TCP echo servers and clients, for TCP routes.
