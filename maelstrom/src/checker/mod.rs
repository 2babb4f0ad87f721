//! Checkers: pure functions from history/journal to Maelstrom's result maps.
