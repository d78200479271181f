//! Test certificates (rcgen) and TLS servers and clients (rustls).
