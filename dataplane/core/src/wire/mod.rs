//! Zero-copy views of the packet formats (filled in by the wire module owner).
