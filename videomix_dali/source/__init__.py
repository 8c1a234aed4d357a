"""Where clips come from: the dataset index, each file's probe (frames, size, codec, safe cut
points; cached), the bytes a clip needs (Matroska cuts, MP4 packets rewrapped), the decode
check, and PyAV decoding for the codecs DALI's CPU decoder lacks."""
