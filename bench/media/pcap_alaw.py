#!/usr/bin/env python3
"""Extract the RTP payloads of a PCMA capture (sipp's g711a.pcap) as one raw A-law file, in
sequence-number order, for sipp's rtp_stream (which loops a raw file with continuous RTP
sequence numbers; replaying the capture itself restarts them at every loop).

    pcap_alaw.py IN.pcap OUT.al        prints the packet count and the seconds extracted
"""
import struct
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as f:
        d = f.read()
    if len(d) < 24:
        sys.exit("pcap_alaw: %s: too short for a pcap" % sys.argv[1])
    magic = struct.unpack("<I", d[:4])[0]
    if magic == 0xA1B2C3D4:
        end = "<"
    elif magic == 0xD4C3B2A1:
        end = ">"
    else:
        sys.exit("pcap_alaw: %s: not a classic pcap" % sys.argv[1])
    link = struct.unpack(end + "I", d[20:24])[0]
    if link not in (1, 113):
        sys.exit("pcap_alaw: link type %d (want Ethernet or Linux cooked)" % link)
    l2 = 14 if link == 1 else 16
    off, pkts = 24, []
    while off + 16 <= len(d):
        incl = struct.unpack(end + "IIII", d[off:off + 16])[2]
        pkt = d[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        rtp = ip[(ip[0] & 15) * 4 + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 8:
            continue
        seq = struct.unpack(">H", rtp[2:4])[0]
        cc = rtp[0] & 15
        pkts.append((seq, rtp[12 + 4 * cc:]))
    if not pkts:
        sys.exit("pcap_alaw: no PCMA packets in %s" % sys.argv[1])
    # Unwrap 16-bit sequence numbers relative to the first packet.
    first = pkts[0][0]
    pkts.sort(key=lambda p: (p[0] - first) & 0xFFFF)
    payload = b"".join(p[1] for p in pkts)
    # rtp_stream sends 160-byte packets; a partial last packet would wrap mid-packet.
    payload = payload[:len(payload) - len(payload) % 160]
    with open(sys.argv[2], "wb") as f:
        f.write(payload)
    print("%d packets, %.2f s" % (len(pkts), len(payload) / 8000.0))


if __name__ == "__main__":
    main()
