#!/usr/bin/env python3
# An APC PDU for the tests: net-snmp's snmpd runs this as a pass_persist
# script. It serves the sPDUOutletCtl column for four outlets: 1 on, 2 off,
# and 3 reboot, which reads 3 for REBOOT_S seconds and then on, as APC's
# outletReboot does. The states are kept in the file named by its argument;
# every set that lands is logged to that file + ".sets" as "unix_ms outlet
# value", so a test reads what the PDU was told, and when.
import os, sys, time
BASE = ".1.3.6.1.4.1.318.1.1.4.4.2.1.3"
STATE = sys.argv[1]
COUNT = 4
REBOOT_S = 3.0

def load():
    try:
        with open(STATE) as f:
            states = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return [2] * COUNT
    try:
        with open(STATE + ".reboot") as f:
            ends = [float(x) for x in f.read().split()]
    except FileNotFoundError:
        ends = [0.0] * COUNT
    return [1 if v == 3 and time.time() >= ends[i] else v for i, v in enumerate(states)]

def save(states):
    with open(STATE + ".tmp", "w") as f:
        f.write(" ".join(map(str, states)))
    os.replace(STATE + ".tmp", STATE)

def index(oid):
    rest = oid[len(BASE) + 1:] if oid.startswith(BASE + ".") else ""
    return int(rest) if rest.isdigit() and 1 <= int(rest) <= COUNT else None

def say(*lines):
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()

for line in sys.stdin:
    command = line.strip()
    if not command:
        continue  # snmpd ends a set with an empty line
    if command == "PING":
        say("PONG")
    elif command == "get":
        oid = sys.stdin.readline().strip()
        i = index(oid)
        say(oid, "integer", str(load()[i - 1])) if i else say("NONE")
    elif command == "getnext":
        oid = sys.stdin.readline().strip()
        i = index(oid)
        n = 1 if not oid.startswith(BASE + ".") and oid <= BASE else (i + 1 if i else COUNT + 1)
        say(f"{BASE}.{n}", "integer", str(load()[n - 1])) if n <= COUNT else say("NONE")
    elif command == "set":
        oid = sys.stdin.readline().strip()
        kind, _, value = sys.stdin.readline().strip().partition(" ")
        i = index(oid)
        if not i:
            say("not-writable")
        elif kind != "integer":
            say("wrong-type")
        elif value not in ("1", "2", "3"):
            say("wrong-value")
        else:
            states = load()
            states[i - 1] = int(value)
            if value == "3":
                try:
                    with open(STATE + ".reboot") as f:
                        ends = [float(x) for x in f.read().split()]
                except FileNotFoundError:
                    ends = [0.0] * COUNT
                ends[i - 1] = time.time() + REBOOT_S
                with open(STATE + ".reboot", "w") as f:
                    f.write(" ".join(map(str, ends)))
            save(states)
            with open(STATE + ".sets", "a") as f:
                f.write(f"{int(time.time() * 1000)} {i} {value}\n")
            say("DONE")
    else:
        say("NONE")
