//! System tests: the five services as separate `skyledger serve` processes on a private
//! nats-server and a fresh database, driven over HTTP only.

mod backup;
mod bad_input;
mod browser;
mod clock;
mod cluster;
mod crash;
mod databases;
mod dead_letters;
mod event_path;
mod evidence;
mod faults;
mod field_batches;
mod fuzz;
mod import;
mod intake;
mod ledger;
mod lifecycle;
mod manifests;
mod notification;
mod open311;
mod overload;
mod publication;
mod publication_browser;
mod publication_chain;
mod publication_stats;
mod roles;
mod scale_out;
mod schemas;
mod security;
mod simulate;
mod support;
mod tiles;
mod tracing;
mod witness;
mod workbench;
