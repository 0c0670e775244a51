#!/usr/bin/env python3
"""Regenerate the golden files from fixture.json using ipvsadm 1.31's own printf formats.

This deliberately does not use rvsadm's renderer: every line below is a transcription of a
printf in ipvsadm.c (print_title, print_service_entry, print_largenum, print_conn, list_conn,
list_timeout, list_daemon, list_all, print_tunnel_rule), applied with Python's %-formatting, which follows
C's printf for %s/%d/%u with widths and '-' flags. Run: python3 generate.py
"""
import ipaddress
import json

fx = json.load(open("fixture.json"))
PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132, "fwmark": 6}
PROTO_NAME = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
PROTO_OPT = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
FWD_NAME = {"masq": "Masq", "route": "Route", "tunnel": "Tunnel", "local": "Local"}
FWD_SWITCH = {"masq": "-m", "route": "-g", "tunnel": "-i", "local": "-g"}


def is_v6(sid):
    return sid["ipv6"] if sid["proto"] == "fwmark" else ":" in sid["addr"]


def addrport(addr, port):
    # addrport_to_anyname with FMT_NUMERIC: "%s%s%s:%u"
    return ("[%s]:%u" if ":" in addr else "%s:%u") % (addr, port)


def c_int(x):  # C's conversion of an unsigned 32-bit difference to int
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def words(addr):  # union nf_inet_addr as ntohl'd 32-bit words; IPv4 in the first, zeros after
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        return [int(a), 0, 0, 0]
    n = int(a)
    return [(n >> (96 - 32 * i)) & 0xFFFFFFFF for i in range(4)]


def cmp_addr(v6, a, b):  # the address part of ipvs_cmp_services / ipvs_cmp_dests
    wa, wb = words(a), words(b)
    r = 0
    if v6:
        i = 0
        while not r and i < 4:
            r = c_int(wa[i] - wb[i])
            i += 1
    else:
        r = c_int(wa[0] - wb[0])
    return r


def svc_fields(s):  # what ipvs_get_services fills in (no protocol/addr/port for fwmark services)
    sid = s["config"]["id"]
    af = 10 if is_v6(sid) else 2
    if sid["proto"] == "fwmark":
        return sid["mark"], af, 0, "0.0.0.0", 0
    return 0, af, PROTO_NUM[sid["proto"]], sid["addr"], sid["port"]


def cmp_services(s1, s2):  # libipvs ipvs_cmp_services
    f1, af1, p1, a1, port1 = svc_fields(s1)
    f2, af2, p2, a2, port2 = svc_fields(s2)
    r = c_int(f1 - f2)
    if r:
        return r
    r = af1 - af2
    if r:
        return r
    r = p1 - p2
    if r:
        return r
    r = cmp_addr(af1 == 10, a1, a2)
    if r:
        return r
    return port1 - port2


def cmp_dests(d1, d2):  # libipvs ipvs_cmp_dests
    c1, c2 = d1["config"], d2["config"]
    r = cmp_addr(":" in c1["addr"], c1["addr"], c2["addr"])
    if r:
        return r
    return c1["port"] - c2["port"]


def qsort(items, cmp):  # glibc's qsort: msort_with_tmp, a top-down merge sort
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    b1, b2 = qsort(items[:n1], cmp), qsort(items[n1:], cmp)
    out = []
    while b1 and b2:
        if cmp(b1[0], b2[0]) <= 0:
            out.append(b1.pop(0))
        else:
            out.append(b2.pop(0))
    return out + b1 + b2


def largenum(i, exact):  # print_largenum
    if exact:
        n = len("%u" % i)
        return "%*u" % (9 if n <= 8 else n + 1, i)
    if i < 100000000:
        return "%9u" % i
    if i < 1000000000:
        return "%8uK" % (i // 1000)
    if i < 100000000000:
        return "%8uM" % (i // 1000000)
    if i < 100000000000000:
        return "%8uG" % (i // 1000000000)
    return "%8uT" % (i // 1000000000000)


def title(fmt):  # print_title
    if "stats" in fmt:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    if "rate" in fmt:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
    if "thresholds" in fmt:
        return "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
    if "pc" in fmt:
        return "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
    if "tun" in fmt:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    return ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")


def sched_flags(cfg):  # print_sched_flags
    bits = 0
    for f in cfg["sched_flags"]:
        bits |= {"flag-1": 1, "sh-fallback": 1, "mh-fallback": 1,
                 "flag-2": 2, "sh-port": 2, "mh-port": 2, "flag-3": 4}[f]
    s = cfg["scheduler"]
    names = []
    if s in ("sh", "mh"):
        if bits & 1: names.append(s + "-fallback")
        if bits & 2: names.append(s + "-port")
    else:
        for b, n in ((1, "flag-1"), (2, "flag-2"), (4, "flag-3")):
            if bits & b: names.append(n)
    return bits, ",".join(names)


def mask_text(cfg):
    m = cfg["netmask"]
    if m is None:
        return None
    if is_v6(cfg["id"]):
        return "%i" % m if m != 128 else None
    return str(ipaddress.ip_network("0.0.0.0/%d" % m).netmask) if m != 32 else None


def tun_info(c):  # fwd_tun_info
    if c["method"] != "tunnel":
        return "n/a"
    t = c["tunnel"]
    flag = {"nocsum": "-c", "csum": "+c", "remcsum": "r+c"}[t["checksum"]]
    if t["kind"] == "ipip":
        return "ipip"
    if t["kind"] == "gue":
        return "gue:%d:%s" % (t["port"], flag)
    return "gre:%s" % flag


def service_entry(s, fmt):  # print_service_entry
    cfg, sid = s["config"], s["config"]["id"]
    exact = "exact" in fmt
    out = ""
    if "rule" in fmt:
        if sid["proto"] == "fwmark":
            name = ("-f %u -6" if sid["ipv6"] else "-f %u") % sid["mark"]
        else:
            name = "%s %s" % (PROTO_OPT[sid["proto"]], addrport(sid["addr"], sid["port"]))
        out += "-A %s -s %s" % (name, cfg["scheduler"])
        if cfg["persistence"] is not None:
            out += " -p %u" % cfg["persistence"]
            if mask_text(cfg): out += " -M %s" % mask_text(cfg)
        if cfg["pe"]: out += " --pe %s" % cfg["pe"]
        if cfg["one_packet"]: out += " -o"
        bits, text = sched_flags(cfg)
        if bits: out += " -b " + text
    else:
        if sid["proto"] == "fwmark":
            name = ("FWM  %u IPv6" if sid["ipv6"] else "FWM  %u") % sid["mark"]
        else:
            name = "%-4s %s" % (PROTO_NAME[sid["proto"]], addrport(sid["addr"], sid["port"]))
            if not is_v6(sid): name = name[:33]
        if "stats" in fmt:
            st = s["stats"]
            out += "%-33s" % name + "".join(largenum(st[k], exact) for k in
                    ("conns", "in_pkts", "out_pkts", "in_bytes", "out_bytes"))
        elif "rate" in fmt:
            r = s["rates"]
            out += "%-33s" % name + "".join(largenum(r[k], exact) for k in
                    ("cps", "in_pps", "out_pps", "in_bps", "out_bps"))
        else:
            out += "%s %s" % (name, cfg["scheduler"])
            bits, text = sched_flags(cfg)
            if bits: out += " (" + text + ")"
            if cfg["persistence"] is not None:
                out += " persistent %u" % cfg["persistence"]
                if mask_text(cfg): out += " mask %s" % mask_text(cfg)
                if cfg["pe"]: out += " pe %s" % cfg["pe"]
            if cfg["one_packet"]: out += " ops"
    out += "\n"
    dests = s["dests"] if "nosort" in fmt else qsort(s["dests"], cmp_dests)
    for d in dests:
        c = d["config"]
        dname = addrport(c["addr"], c["port"])
        if "rule" in fmt:
            line = "-a %s -r %s %s -w %d" % (name, dname, FWD_SWITCH[c["method"]], c["weight"])
            if c["method"] == "tunnel":  # print_tunnel_rule
                t = c["tunnel"]
                opt = {"nocsum": "--tun-nocsum", "csum": "--tun-csum", "remcsum": "--tun-remcsum"}[t["checksum"]]
                if t["kind"] == "ipip": line += " --tun-type ipip"
                elif t["kind"] == "gue": line += " --tun-type gue --tun-port %d %s" % (t["port"], opt)
                else: line += " --tun-type gre %s" % opt
            out += line + "\n"
            continue
        if ":" not in c["addr"]: dname = dname[:28]
        if "stats" in fmt:
            st = d["stats"]
            out += "  -> %-28s" % dname + "".join(largenum(st[k], exact) for k in
                    ("conns", "in_pkts", "out_pkts", "in_bytes", "out_bytes")) + "\n"
        elif "rate" in fmt:
            r = d["rates"]
            out += "  -> %-28s %8u %8u %8u" % (dname, r["cps"], r["in_pps"], r["out_pps"])
            out += largenum(r["in_bps"], exact) + largenum(r["out_bps"], exact) + "\n"
        elif "thresholds" in fmt:
            out += "  -> %-28s %-10u %-10u %-10u %-10u\n" % (
                dname, c["u_threshold"], c["l_threshold"], d["active_conns"], d["inactive_conns"])
        elif "pc" in fmt:
            out += "  -> %-28s %-9u %-11u %-10u %-10u\n" % (
                dname, c["weight"], d["persist_conns"], d["active_conns"], d["inactive_conns"])
        elif "tun" in fmt:
            out += "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" % (
                dname, FWD_NAME[c["method"]], tun_info(c), c["weight"],
                d["active_conns"], d["inactive_conns"])
        else:
            out += "  -> %-28s %-7s %-6d %-10u %-10u\n" % (
                dname, FWD_NAME[c["method"]], c["weight"], d["active_conns"], d["inactive_conns"])
    return out


def list_all(fmt, services=None):  # list_all
    services = fx["services"] if services is None else services
    out = ""
    if "rule" not in fmt:
        out += "IP Virtual Server version %s (size=%d)\n" % (
            fx["info"]["version"], fx["info"]["conn_table_size"])
        out += title(fmt)
    for s in (services if "nosort" in fmt else qsort(services, cmp_services)):
        out += service_entry(s, fmt)
    return out


def list_conn(fmt, conns=None):  # list_conn + print_conn
    out = "IPVS connection entries\n"
    if "pc" in fmt:
        out += "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" % (
            "state", "source", "virtual", "destination", "pe name", "pe_data")
    else:
        out += "pro expire %-11s %-18s %-18s %s\n" % ("state", "source", "virtual", "destination")
    for c in (fx["connections"] if conns is None else conns):
        expires = c["expires_ms"] // 1000
        expire = "%02d:%02d" % (expires // 60, expires % 60)
        # /proc/net/ip_vs_conn ends a persistence engine's template with the engine's name
        # and data, which print_conn shows (its sscanf found 11 fields) with -o.
        if "pc" in fmt and c.get("pe"):
            out += "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n" % (
                c["proto"], expire, c["state"], c["client"], c["virtual_addr"], c["dest"],
                c["pe"][0], c["pe"][1])
        else:
            out += "%-3s %-6s %-11s %-18s %-18s %s\n" % (
                c["proto"], expire, c["state"], c["client"], c["virtual_addr"], c["dest"])
    return out


def list_daemon():  # list_daemon: master first, then backup; zero/unset fields omitted
    out = ""
    for d in sorted(fx["daemons"], key=lambda d: d["role"] != "master"):
        out += "%s sync daemon (mcast=%s, syncid=%d" % (d["role"], d["mcast_interface"], d["syncid"])
        if d["maxlen"]:
            out += ", maxlen=%u" % d["maxlen"]
        if d["group"]:
            out += ", group=%s" % d["group"]
        if d["port"]:
            out += ", port=%u" % d["port"]
        if d["ttl"]:
            out += ", ttl=%u" % d["ttl"]
        out += ")\n"
    return out


sort_fx = json.load(open("fixture_sort.json"))["services"]
sctp_fx = json.load(open("fixture_sctp.json"))
sip_fx = json.load(open("fixture_sip.json"))

files = {
    # fixture_sort.json: services and real servers whose order differs from a naive sort
    # (wrapping 32-bit differences, fwmarks of 2^31 and more, a cyclic triple of addresses).
    "sort_list.txt": list_all(set(), sort_fx),
    "sort_nosort.txt": list_all({"nosort"}, sort_fx),
    "sort_save.txt": list_all({"rule"}, sort_fx),
    "sort_stats.txt": list_all({"stats"}, sort_fx),
    "sort_rate.txt": list_all({"rate"}, sort_fx),
    # fixture_sctp.json: --sctp-service services next to TCP and UDP ones, and SCTP
    # connections in IPVS's state names (sctp_state_name_table).
    "sctp_list.txt": list_all(set(), sctp_fx["services"]),
    "sctp_save.txt": list_all({"rule"}, sctp_fx["services"]),
    "sctp_stats.txt": list_all({"stats"}, sctp_fx["services"]),
    "sctp_connections.txt": list_conn(set(), sctp_fx["connections"]),
    # fixture_sip.json: persistent UDP services with --pe sip and their Call-ID templates.
    "sip_list.txt": list_all(set(), sip_fx["services"]),
    "sip_save.txt": list_all({"rule"}, sip_fx["services"]),
    "sip_connections.txt": list_conn(set(), sip_fx["connections"]),
    "sip_connections_persistent.txt": list_conn({"pc"}, sip_fx["connections"]),
    "daemon.txt": list_daemon(),
    "list_numeric.txt": list_all(set()),
    "stats.txt": list_all({"stats"}),
    "stats_exact.txt": list_all({"stats", "exact"}),
    "rate.txt": list_all({"rate"}),
    "rate_exact.txt": list_all({"rate", "exact"}),
    "thresholds.txt": list_all({"thresholds"}),
    "persistent_conn.txt": list_all({"pc"}),
    "tun_info.txt": list_all({"tun"}),
    "save.txt": list_all({"rule"}),
    "list_one_service.txt": title(set()) + service_entry(
        [s for s in fx["services"] if s["config"]["id"].get("addr") == "192.168.2.130"][0], set()),
    "connections.txt": list_conn(set()),
    "connections_persistent.txt": list_conn({"pc"}),
    "timeout.txt": "Timeout (tcp tcpfin udp): %d %d %d\n" % (
        fx["timeouts"]["tcp"], fx["timeouts"]["tcp_fin"], fx["timeouts"]["udp"]),
}
for name, text in files.items():
    open(name, "w").write(text)
