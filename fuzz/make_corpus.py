#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz/core_fuzzer.c into fuzz/corpus/.

Each seed is a short, readable operation sequence in the target's input
format (see the top of core_fuzzer.c): operations and their choices from the
front, a stop byte, then what the callbacks do, read from the back. The
choices mirror the comments above each operation in test/model/model.c; if
the two drift apart, a seed still runs, it just does something else, so
check a seed with:  MMN_FUZZ_TRACE=1 build/fuzz/fuzz/core_fuzzer fuzz/corpus/NAME

Usage: fuzz/make_corpus.py [DIR]      (default: fuzz/corpus next to this file)
"""
import os
import sys

NR_SUBS = 16            # core_fuzzer.c
MAX_OPEN = 6            # model.h
OP = dict(insert=0, remove=1, open=2, close=3, read_begin=4, retry=5,
          release=6, misc=7, set_seq=8, new_domain=9)
STOP = 0xFF
PAD = 32                # default (0) callback choices after the explicit ones


def choice(n, v):
    """A choice below n, as the target reads it (1, 2, 4 or 8 bytes, LE)."""
    assert n == 0 or 0 <= v < n, (n, v)
    if n == 1:
        return b""
    width = 8 if n == 0 or n > 1 << 32 else 4 if n > 1 << 16 else 2 if n > 1 << 8 else 1
    return v.to_bytes(width, "little")


# Geometry (rand_addr, rand_len, rand_range in model.c).
def slot(k):
    return choice(20, 0) + choice(64, k)        # 0x100000 + k pages


def addr_top(back):
    return choice(20, 10) + choice(3 * 4096, back)      # ULONG_MAX - back


def addr_equal(sub):
    return choice(20, 16) + choice(NR_SUBS, sub)        # another's start


def pages(n):
    return choice(20, 0) + choice(8, n - 1)


def to_top():
    return choice(20, 13)                       # up to and including ULONG_MAX


def range_whole():
    return choice(14, 0)


def range_at(addr, length):
    return choice(14, 5) + addr + length


def range_far():
    return choice(14, 3) + choice(0x100000, 7) + choice(0x10000, 100)


class Seed:
    """Operations, in order, and the callback choices the walks will read."""

    def __init__(self):
        self.ops = bytearray()
        self.cbs = bytearray()
        self.open = 0

    def op(self, name, *args):
        self.ops += bytes([OP[name]]) + b"".join(args)
        return self

    def insert(self, sub, addr, length, two_pass=False, bad=None):
        # Choices: mode (4: any notifier), which, address, length, two-pass, refusal.
        refuse = choice(24, 0) if bad is None else bad
        return self.op("insert", choice(5, 4), choice(NR_SUBS, sub), addr, length,
                       choice(2, int(two_pass)), refuse)

    def remove(self, sub):
        return self.op("remove", choice(3, 2), choice(NR_SUBS, sub))

    def start(self, rng, blockable=True, opens=True):
        free = MAX_OPEN - self.open
        assert free > 0
        self.op("open", choice(free, 0), rng, choice(10, 0 if blockable else 7),
                choice(2, 0), choice(8, 0), choice(2, 0))
        self.open += int(opens)
        return self

    def end(self, k=0):
        """End the k-th open region, in slot order."""
        assert 0 <= k < self.open
        self.op("close", choice(self.open, k))
        self.open -= 1
        return self

    def read_begin(self, sub):
        return self.op("read_begin", choice(NR_SUBS, sub))

    def retry(self, sub, mode=0):        # 0 the saved value, 2 the current one
        return self.op("retry", choice(NR_SUBS, sub), choice(4, mode))

    def set_seq(self, preset):           # ULONG_MAX-1, -3, -5, 0, 2
        return self.op("set_seq", choice(4, 0), choice(5, preset))

    def misc(self, case, *args):
        return self.op("misc", choice(8, case), *args)

    # Callback choices, in the order the walks plan them.
    def cb(self, set_seq=True, ret=True, blockable=True, two_pass=False, finish=True,
           decoy=False, action=b""):
        b = bytearray(choice(10, 0 if set_seq else 9))
        if blockable:
            b += choice(25, 0 if ret else 24)
        else:
            b += choice(6, 0 if ret else 5)
        if two_pass:
            b += choice(10, 0 if finish else 7) if ret else choice(2, int(decoy))
        b += action if action else choice(100, 0)
        self.cbs += b
        return self

    def finish(self, action=b""):
        self.cbs += action if action else choice(100, 0)
        return self

    def build(self):
        return bytes(self.ops) + bytes([STOP]) + bytes(PAD) + bytes(reversed(self.cbs))


# Actions a callback takes (decide_action in model.c).
def act_insert(sub, addr, length, two_pass=False):
    return (choice(100, 85) + choice(10, 0) + choice(4, 3) + choice(NR_SUBS, sub) + addr +
            length + choice(2, int(two_pass)))


def act_remove_self():
    return choice(100, 85) + choice(10, 3) + choice(3, 1)


def act_read_begin(sub):
    return choice(100, 85) + choice(10, 5) + choice(NR_SUBS, sub)


def act_nested(rng, blockable=True):
    return choice(100, 85) + choice(10, 7) + rng + choice(3, 0 if blockable else 2)


def act_release():
    return choice(100, 85) + choice(10, 9) + choice(3, 2)


def seeds():
    s = {}

    # Inserts: idle, equal starts, the top of the address space, refusals.
    s["insert-remove"] = (Seed()
        .insert(0, slot(0), pages(1)).insert(1, addr_equal(0), pages(2), two_pass=True)
        .insert(2, addr_top(0), choice(20, 15)).insert(3, choice(20, 14), to_top())
        .insert(0, slot(4), pages(1))                                  # -EBUSY
        .insert(4, slot(1), pages(1), bad=choice(24, 20) + choice(6, 1))   # bad ops
        .insert(5, slot(1), pages(1), bad=choice(24, 21))              # length 0
        .insert(6, slot(1), pages(1), bad=choice(24, 23) + choice(4096, 5))  # wraps
        .remove(1).remove(1).remove(0).remove(7))

    # Two regions hit, one misses; inserts during partial and full exclusion;
    # the regions end in another order than they started.
    s["interleave"] = (Seed()
        .insert(0, slot(0), pages(2)).insert(1, slot(8), pages(1), two_pass=True)
        .start(range_far()).insert(2, slot(0), pages(1))              # partial: odd
        .start(range_at(slot(0), pages(1)))
        .start(range_at(slot(8), pages(1)))
        .insert(3, addr_equal(0), pages(1)).insert(4, addr_equal(0), pages(1))  # deferred
        .remove(3).read_begin(0).read_begin(5)
        .end(1).end(0).end(0)
        .start(range_whole()).end(0))
    s["interleave"].cb().cb().cb().cb(two_pass=True).finish().cb().cb().cb(two_pass=True).finish()

    # Non-blockable: the second notifier fails, the first one's finish runs,
    # the region is closed by the core; a decoy finish is ignored.
    s["nonblock-eagain"] = (Seed()
        .insert(0, slot(0), pages(1), two_pass=True).insert(1, slot(1), pages(1))
        .insert(2, slot(2), pages(1), two_pass=True)
        .start(range_whole(), blockable=False, opens=False)
        .start(range_at(slot(2), pages(1)), blockable=False, opens=False)
        .start(range_whole(), blockable=False).end(0))
    (s["nonblock-eagain"]
        .cb(blockable=False, two_pass=True).cb(blockable=False, ret=False).finish()
        .cb(blockable=False, two_pass=True, ret=False, decoy=True)
        .cb(blockable=False, two_pass=True).cb(blockable=False)
        .cb(blockable=False, two_pass=True, finish=False))

    # Two-pass notifiers with and without a finish; false on a blockable range.
    s["two-pass"] = (Seed()
        .insert(0, slot(0), pages(4), two_pass=True)
        .insert(1, addr_equal(0), pages(1), two_pass=True)
        .insert(2, slot(1), pages(1))
        .start(range_at(slot(0), pages(2))).end(0).op("release"))
    (s["two-pass"]
        .cb(two_pass=True).cb(two_pass=True, finish=False).cb(ret=False).finish()
        .cb(two_pass=True, set_seq=False).cb(two_pass=True).cb().finish().finish())

    # The collision-retry protocol: read_begin, a hit, read_retry says retry.
    s["read-retry"] = (Seed()
        .insert(0, slot(0), pages(1)).insert(1, slot(4), pages(1))
        .read_begin(0).retry(0)
        .start(range_at(slot(0), pages(1))).read_begin(1).read_begin(0)
        .retry(0).retry(0, 2).end(0).retry(0).read_begin(0).retry(0).read_begin(3))
    s["read-retry"].cb()

    # Release with regions open and without; notifiers stay inserted.
    s["release"] = (Seed()
        .insert(0, slot(0), pages(1)).insert(1, addr_top(0), choice(20, 15))
        .op("release").start(range_far()).op("release").end(0).op("release")
        .remove(0).remove(1))
    s["release"].cb().cb().cb().cb().cb().cb()

    # Sequence presets near ULONG_MAX; each period moves it by 2 and wraps to 0.
    s["seq-wrap"] = (Seed()
        .set_seq(0).insert(0, slot(0), pages(1)).insert(1, slot(1), pages(1))
        .start(range_whole()).start(range_at(slot(1), pages(1))).set_seq(3)
        .end(0).end(0).read_begin(0).retry(0)
        .start(range_whole()).end(0)
        .set_seq(1).start(range_at(slot(0), pages(1))).end(0).set_seq(2))
    s["seq-wrap"].cb().cb().cb().cb().cb().cb()

    # Callbacks that act: insert (deferred), remove themselves (-EDEADLK),
    # read_begin another notifier, a nested invalidation, a release.
    s["callback-actions"] = (Seed()
        .insert(0, slot(0), pages(1), two_pass=True).insert(1, slot(1), pages(1))
        .insert(2, slot(2), pages(1))
        .start(range_whole()).end(0)
        .start(range_at(slot(0), pages(3))).end(0))
    (s["callback-actions"]
        .cb(two_pass=True, action=act_insert(5, addr_equal(1), pages(1)))
        .cb(action=act_remove_self())
        .cb(set_seq=False, action=act_read_begin(7))
        .finish(action=act_read_begin(2))
        .cb(two_pass=True, action=act_nested(range_at(slot(1), pages(1))))
        .cb().cb()                      # the nested walk: subs 1 and 5
        .cb(action=act_release())       # sub 1
        .cb(two_pass=True).cb().cb().cb().finish()     # the release: 0, 1, 5, 2
        .cb().cb().finish())            # subs 5 and 2, the finish of sub 0

    # Refused and counted calls; a busy destroy; a new domain.
    s["misc"] = (Seed()
        .insert(0, slot(0), pages(1))
        .misc(0, slot(3), choice(2, 1)).misc(1).misc(2).misc(3).misc(5).misc(6, slot(0))
        .misc(4, choice(4, 0), choice(5, 4)).misc(7, addr_top(1))
        .op("new_domain").insert(0, slot(0), pages(1)).op("new_domain"))
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, seed in sorted(seeds().items()):
        data = seed.build()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
