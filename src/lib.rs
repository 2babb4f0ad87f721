//! murmur: Maelstrom nodes (echo, unique-ids, broadcast) over one shared library.
pub mod wire;
