"""Writes an FLV file to stdout with every tag's timestamp moved by SHIFT
milliseconds (modulo 2^32, as RTMP counts), in real time: each tag goes out
when its time comes. For ffmpeg's RTMP client to publish as is:

    python3 flv_retime.py clip.flv SHIFT | ffmpeg -f data -i pipe:0 -c copy -f data rtmp://...

ffmpeg's own FLV muxer would cut timestamps to 31 bits; its RTMP protocol
reads the FLV tags it is given and sends their full 32-bit times."""

import sys
import time

data = open(sys.argv[1], "rb").read()
shift = int(sys.argv[2])
out = sys.stdout.buffer
header = int.from_bytes(data[5:9], "big")
out.write(data[: header + 4])
at = header + 4
start = None
while at + 11 <= len(data):
    size = int.from_bytes(data[at + 1 : at + 4], "big")
    ts = int.from_bytes(data[at + 4 : at + 7], "big") | (data[at + 7] << 24)
    moved = (ts + shift) % (1 << 32)
    tag = bytearray(data[at : at + 11 + size + 4])
    tag[4:7] = (moved & 0xFFFFFF).to_bytes(3, "big")
    tag[7] = moved >> 24
    now = time.monotonic()
    if start is None:
        start = (now, ts)
    wait = start[0] + (ts - start[1]) / 1000 - now
    if wait > 0:
        time.sleep(wait)
    try:
        out.write(tag)
        out.flush()
    except BrokenPipeError:
        break
    at += 11 + size + 4
