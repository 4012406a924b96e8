"""Renderers: each turns a report object into a string; none of them prints or decides."""
