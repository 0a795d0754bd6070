/* SPDX-License-Identifier: MIT */
/*
 * Promela model (spin 6.5) of libmmn's core protocol as implemented in
 * src/core/notifier.c: the sequence protocol with read_begin's lock-free fast
 * path, the lock-free miss (a region that hits nothing, opened and closed
 * without the lock), the deferred insert/remove list, the unlocked two-pass
 * walk and the condition-variable wake-up at the end of an odd period.
 *
 * test/spin/run.sh checks every configuration and every mutant below. By
 * hand, in a scratch directory (never in the source tree):
 *   spin [-DNAME=value ...] -a notifier.pml
 *   cc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c && ./pan -m20000
 *       (assertions + invalid end states; expect "errors: 0")
 *   cc -O2 -DNP -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c && ./pan -l -m20000
 *       (no progress labels, so any cycle is reported: "errors: 0" means
 *        every run is finite)
 *   spin [-D...] -t -p -g notifier.pml    replays a counterexample
 *
 * What mirrors what in notifier.c
 * -------------------------------
 *   Inv       one thread calling mmn_invalidate_range_start[_nonblock]() and
 *             mmn_invalidate_range_end(), or mmn_mm_release():
 *               tried = 1            inv_start_fast(): the slot increment
 *               probe atomic         mmn_itree_probe_miss(): a miss opens
 *                                    the region lock-free (fast = 1); a hit,
 *                                    or a probe that a change got in the
 *                                    way of (either, on a miss), falls
 *                                    through to the locked path
 *               locked atomic        inv_start_range() (moves a tried
 *                                    region out of its slot)
 *               walk do-loop         itree_invalidate(): the tree is read
 *                                    without the lock, then the callback runs
 *               cb_start             a driver's invalidate_start (user lock,
 *                                    set_seq, zap, submit device work, queue
 *                                    its finish) or single-pass invalidate
 *               finish do-loop       the second pass; cb_finish = a driver's
 *                                    invalidate_finish (wait for the device)
 *               cpu_change           the caller changing the CPU mapping
 *               inv_end              inv_end() + apply_deferred_locked()
 *               fast_end             inv_end_fast(): the slot decrement,
 *                                    then (odd) the locked end of period
 *               again (NONBLOCK=1)   the -EAGAIN path (core closes the region)
 *   Reader    a device fault on n0: the collision-retry loop of spec §8.1
 *               read_begin           mmn_interval_read_begin()
 *               nseq test in fault   mmn_interval_read_retry()
 *   Owner     n1's owner: mmn_interval_notifier_insert() (insert),
 *             a fault, mmn_interval_notifier_remove() (remove), NLIFE times
 *   Monitor   mm_check_locked() / mmn_mm_test_check(): invariants
 *   cond_wait / the broadcast in inv_end: pthread_cond_wait / _broadcast
 *
 * Abstractions
 * ------------
 * - 2 pages, 2 notifiers. n0 covers page 0 and is inserted (idle) at the
 *   start; n1 covers pages 0-1 and is inserted and removed NLIFE times.
 *   Ranges are page masks 1, 2, 3 (3 = release), chosen by Inv. Tree order
 *   is index order (equal starts, n0 first); D4's FIFO is not modelled.
 * - Sequences wrap: all sequence arithmetic is modulo SEQMOD (default 16)
 *   and the domain starts at SEQMOD-2 or at 0 (chosen by init), so the
 *   first period wraps (14 -> 15 -> 0), and an idle insert at 0 stores
 *   SEQMOD-1 (unit/seq_wrap presets it). The protocol needs fewer than SEQMOD/2 periods
 *   between a reader's read_begin and read_retry (2^63 in C): check "wrap8"
 *   (SEQMOD=8, 4 periods) makes spin find that ABA.
 * - A section under mm->lock is one atomic step, except where a lock-free
 *   reader could see a state in between: the end of a period finds no region
 *   open, then applies the deferred list and moves the sequence, in two
 *   steps (a lock-free probe may run in between, as it may in C between the
 *   slots' loads and the tree's changes), and cond_wait drops the lock. User (driver) lock sections are atomic steps: only nseq is read
 *   without that lock, and each section writes it once.
 * - Page versions are ghost bits (snap[], stale[]): a counter would make
 *   every number of changes a new state.
 * - Memory is sequentially consistent. The acquire/release argument of the
 *   fast path is in docs/DESIGN.md; the model checks the interleavings and
 *   the order of the two loads (MUT=7 reverses it: stale install). The
 *   lock-free miss's store-load pairs are sequentially consistent in C too
 *   (notifier.c, "The lock-free miss"). Its probe is one atomic step: the
 *   tree changes only in atomic steps here, and in C a probe that overlaps a
 *   change fails its generation check and takes the locked path (modelled
 *   by the probe's freedom to give up on a miss). nfast is the sum of the
 *   slots; the node memory a probe reads is not modelled.
 * - Spurious wake-ups, D6 (-EDEADLK/abort from a callback, or with a region
 *   of the domain open on the calling thread), blockable callbacks
 *   returning false, stats and logging are not modelled. Neither are the
 *   per-thread checks that refuse an unmatched _end before it takes the
 *   lock, nor thread cancellation (disabled across the waits and the walk):
 *   the model's threads always pair start and _end and never die.
 *
 * Properties
 * ----------
 * (1) no stale commit: a reader installs only if the page has not changed
 *     since it looked it up; when a region changes the CPU mapping of a
 *     page, no inserted notifier covering it has a valid mirror entry or an
 *     unflushed device TLB entry; when a completed region ends, every valid
 *     entry in its range is current; the Monitor checks the last in every
 *     state for every inserted notifier;
 * (2) no deadlock: pan's invalid end states (only Monitor has an end label);
 *     the -DNP/-l runs find no cycle, so every run is finite: no wait lasts
 *     forever and retries are bounded once invalidations stop;
 * (3) no callback (first pass or finish) runs on a notifier whose remove
 *     has returned (gone[]) or that is out of the tree, and a remove that
 *     waited returns with the notifier out of the tree;
 * (4) every finish handed out is run exactly once, after every first pass
 *     of its walk, before the walk's CPU change and _end;
 * (5) I1 (seq odd => a region is open, or a lock-free one's end is on its
 *     way to the lock), I3 (deferred non-empty => seq odd) and
 *     nd == number of pending notifiers whenever mm->lock is free; I2
 *     (an inserted notifier's sequence is odd) always.
 *
 * Mutants (-DMUT=n): spin must report an error for each
 * ------------------------------------------------------
 *   1  read_begin never waits (returns the notifier's seq even when equal)
 *   2  remove takes an in-tree notifier out at once while the seq is odd
 *   3  insert while partially excluded does not make the seq odd
 *   4  inv_end does not broadcast the condition variable
 *   5  the finish pass loses its first entry
 *   6  the period ends at the first _end of an odd period, not the last
 *   7  read_begin's fast path loads the domain seq before the notifier's
 *   8  insert ignores lock-free regions (idle instead of partially excluded)
 *   9  a lock-free region's end never ends the period it held open
 *  10  inv_end ends the period while lock-free regions are still open
 *  11  the end of a period does not look at the lock-free regions again
 *      after applying the deferred list (a probe that ran meanwhile missed
 *      a deferred insert, and the new notifier's read_begin does not wait)
 *
 * notifier.c says: if you change the sequence protocol, locking, deferral or
 * the walk there, update this model and run test/spin/run.sh.
 */

/* ---- configuration ---- */
#ifndef SEQMOD
#define SEQMOD 16	/* even */
#endif
#ifndef NINV
#define NINV 2		/* invalidating threads (1 or 2) */
#endif
#ifndef KINV
#define KINV 1		/* regions per invalidating thread */
#endif
#ifndef NFAULT
#define NFAULT 2	/* faults by n0's reader */
#endif
#ifndef NLIFE
#define NLIFE 2		/* insert/remove cycles of n1 */
#endif
#ifndef TWOPASS
#define TWOPASS 3	/* bit n set: notifier n is two-pass, else single-pass */
#endif
#ifndef NONBLOCK
#define NONBLOCK 0	/* 1: regions may be non-blockable, callbacks may fail */
#endif
#ifndef MUT
#define MUT 0		/* planted bug, see the list above; 0: none */
#endif

#define NSUB	2
#define NPAGE	2

/* struct mmn_interval_notifier.state */
#define S_NONE			0
#define S_IN_TREE		1
#define S_PENDING_INSERT	2
#define S_PENDING_REMOVE	3

#define COV(n)		((n) == 0 -> 1 : 3)	/* page mask of notifier n */
#define IDX(n, p)	((n) * NPAGE + (p))
#define ODD(x)		((x) & 1)
#define INC(x)		(((x) + 1) % SEQMOD)
#define DEC(x)		(((x) + SEQMOD - 1) % SEQMOD)
#define INTREE(n)	(st[n] == S_IN_TREE || st[n] == S_PENDING_REMOVE)
#define HITS(n, r)	(INTREE(n) && (COV(n) & (r)))
#define IS2P(n)		(TWOPASS & (1 << (n)))

/* ---- the domain (struct mmn_mm) ---- */
byte seq;		/* invalidate_seq */
byte nactive;		/* active_invalidate_ranges */
byte nfast;		/* lock-free regions: the sum of the fast[] slots */
byte fending;		/* ghost: lock-free ends between decrement and lock */
bit  mmlock;		/* mm->lock */
byte nr_waiters;
byte waiting;		/* mm->wq: bit w set while waiter slot w sleeps */
byte nd;		/* nr_deferred */

/* ---- notifiers ---- */
byte st[NSUB];		/* state */
byte nseq[NSUB];	/* the notifier's invalidate_seq */
bit  gone[NSUB];	/* ghost: its remove has returned */

/*
 * ---- the devices' mirrors and the pages (ghost) ----
 * Page versions are kept as bits so that the state does not count changes:
 * snap[w] = p + 1 while reader slot w holds what it looked up for page p and
 * p has not changed since (a CPU change of p clears it); stale[] marks a
 * mirror entry whose page changed after it was installed.
 */
bit  mval[NSUB * NPAGE];	/* mirror entry valid */
bit  tlb[NSUB * NPAGE];		/* device may still use it (not yet flushed) */
bit  stale[NSUB * NPAGE];
byte snap[2];
bit  ready;

/* ---- invariants, whenever mm->lock is free (Monitor) ---- */
#define I1	(!ODD(seq) || nactive + nfast + fending > 0)
#define I2(n)	(st[n] == S_NONE || ODD(nseq[n]))
#define I3	(nd == 0 || ODD(seq))
#define PEND(n)	(st[n] == S_PENDING_INSERT || st[n] == S_PENDING_REMOVE)
#define NDOK	(nd == PEND(0) + PEND(1))
#define FRESH(i) (st[(i) / NPAGE] == S_NONE || !mval[i] || !stale[i])
#define INVARIANT ((mmlock || (I1 && I3 && NDOK)) && I2(0) && I2(1) && \
		   FRESH(0) && FRESH(1) && FRESH(2) && FRESH(3))

/*
 * pthread_cond_wait(&mm->wq, &mm->lock) for waiter slot w, inside an atomic
 * sequence holding mmlock: release the lock and sleep in one step; wake on
 * a broadcast and re-acquire the lock. Spurious wake-ups are left out: both
 * callers re-check their condition under the lock and sleep again, so one
 * only adds a self-loop to the state graph.
 */
inline cond_wait(w)
{
	waiting = waiting | (1 << w);
	mmlock = 0;
	(mmlock == 0 && !(waiting & (1 << w)));
	waiting = waiting & ~(1 << w);
	mmlock = 1
}

/* apply_deferred_locked(): the tree may change again. */
inline apply_deferred()
{
	i = 0;
	do
	:: i < NSUB ->
		if
		:: st[i] == S_PENDING_INSERT -> st[i] = S_IN_TREE
		:: st[i] == S_PENDING_REMOVE -> st[i] = S_NONE
		:: else -> skip
		fi;
		i++
	:: else -> break
	od;
	nd = 0;
	i = 0
}

/*
 * (1) at our _end (checked as the lock is dropped): every valid mirror entry
 * of an inserted notifier in the range of a completed region is current.
 */
inline end_check()
{
	p = 0;
	do
	:: p < NPAGE && !again ->
		i = 0;
		do
		:: i < NSUB ->
			if
			:: (r & COV(i) & (1 << p)) && st[i] != S_NONE && mval[IDX(i, p)] ->
				assert(!stale[IDX(i, p)])
			:: else -> skip
			fi;
			i++
		:: else -> break
		od;
		p++
	:: else -> break
	od;
	i = 0;
	p = 0
}

/*
 * end_period_if_idle_locked(), second step (the first found no region open
 * and set endp): still locked, but a lock-free probe may have run in
 * between, and may have missed what the deferred list now puts into the
 * tree; if one opened a region, the period stays odd and its end ends it.
 */
inline end_period()
{
	if
	:: endp -> apply_deferred()
	:: else -> skip
	fi;
	if
#if MUT == 10 || MUT == 11
	:: endp ->
#else
	:: endp && nfast == 0 ->
#endif
		seq = INC(seq);
#if MUT != 4
		if
		:: nr_waiters > 0 -> waiting = 0	/* broadcast */
		:: else -> skip
		fi
#endif
	:: else -> skip
	fi
}

/* inv_end(): the last region of an odd period ends it. */
inline inv_end()
{
	atomic {
		mmlock == 0 -> mmlock = 1;
		nactive--;
#if MUT == 6
		endp = ODD(seq);
#elif MUT == 10
		endp = (nactive == 0 && ODD(seq));
#else
		endp = (nactive == 0 && nfast == 0 && ODD(seq));
#endif
		skip
	}
	/* still locked: a lock-free probe may run here */
	atomic {
		end_period();
		end_check();
		endp = 0;
		mmlock = 0;
		/* this region is over: forget its locals */
		r = 0; cur = 0; hit = 0; nb = 0; again = 0; n = 0;
		k++
	}
}

/*
 * inv_end_fast(): close the lock-free region (the slot decrement), then load
 * the sequence; odd: take the lock and end the period if no region at all is
 * open any more (end_period_if_idle_locked).
 */
inline fast_end()
{
	atomic { nfast--; fending++ }
	if
#if MUT != 9
	:: ODD(seq) ->
		atomic {
			mmlock == 0 -> mmlock = 1;
			fending--;
			endp = (nactive == 0 && nfast == 0 && ODD(seq))
		}
		atomic {
			end_period();
			end_check();
			endp = 0;
			mmlock = 0;
			r = 0; fast = 0; k++
		}
#endif
	:: else ->
		atomic {
			fending--;
			end_check();
			r = 0; fast = 0; k++
		}
	fi
}

/*
 * The driver's first pass (invalidate_start, or invalidate for a single-pass
 * notifier) under its user lock: set_seq, zap the mirror entries in the
 * range; single-pass also waits for the device (the TLB is flushed), two-pass
 * only submits that and queues its finish. On a non-blockable range it may
 * return false having done nothing (then the walk stops).
 */
inline cb_start(n)
{
#if NONBLOCK
	if
	:: nb -> again = 1
	:: true -> skip
	fi;
#endif
	if
	:: !again ->
		assert(INTREE(n) && !gone[n]);			/* (3) */
		assert(!(started & (1 << n)));			/* once per walk */
		nseq[n] = cur;					/* set_seq */
		p = 0;
		do
		:: p < NPAGE ->
			if
			:: (COV(n) & r & (1 << p)) ->
				mval[IDX(n, p)] = 0;
				if
				:: !IS2P(n) -> tlb[IDX(n, p)] = 0
				:: else -> skip
				fi
			:: else -> skip
			fi;
			p++
		:: else -> break
		od;
		p = 0;
		if
		:: IS2P(n) ->
			started = started | (1 << n);
			fin = fin | (1 << n)			/* queued */
		:: else -> skip
		fi
	:: else -> skip
	fi;
	n++
}

/* invalidate_finish(): wait for the device work, under the user lock. */
inline cb_finish(n)
{
	assert(INTREE(n) && !gone[n]);				/* (3) */
	assert(!(done & (1 << n)));				/* (4) once */
	assert(firstdone);					/* (4) after pass 1 */
	p = 0;
	do
	:: p < NPAGE ->
		if
		:: (COV(n) & r & (1 << p)) -> tlb[IDX(n, p)] = 0
		:: else -> skip
		fi;
		p++
	:: else -> break
	od;
	p = 0;
	done = done | (1 << n);
	fin = fin & ~(1 << n)
}

/* The caller changes the CPU mapping of the range. */
inline cpu_change()
{
	p = 0;
	do
	:: p < NPAGE ->
		if
		:: (r & (1 << p)) ->
			i = 0;
			do
			:: i < NSUB ->
				if
				:: st[i] != S_NONE && (COV(i) & (1 << p)) ->
					assert(!mval[IDX(i, p)]);	/* (1) */
					assert(!tlb[IDX(i, p)])		/* (1), (4) */
				:: else -> skip
				fi;
				if
				:: mval[IDX(i, p)] -> stale[IDX(i, p)] = 1
				:: else -> skip
				fi;
				i++
			:: else -> break
			od;
			if
			:: snap[0] == p + 1 -> snap[0] = 0
			:: else -> skip
			fi;
			if
			:: snap[1] == p + 1 -> snap[1] = 0
			:: else -> skip
			fi
		:: else -> skip
		fi;
		p++
	:: else -> break
	od;
	i = 0;
	p = 0
}

proctype Inv(byte me)
{
	byte k, r, cur, n, p, i;
	byte fin;		/* the walk's finish list (bit n: n's finish) */
	byte started, done;	/* ghost: finishes handed out / run */
	bit hit, nb, again, endp, firstdone, tried, fast;

	do
	:: atomic {
		k < KINV ->
		/* the caller picks a range (and blockability) */
		if
		:: r = 1
		:: r = 2
		:: r = 3
		fi;
#if NONBLOCK
		if
		:: nb = 0
		:: nb = 1
		fi;
#endif
		/*
		 * range_start announces its lock-free try. (mmn_mm_release
		 * does not, and goes straight to the locked path: the same as
		 * a try that gives up, less the slot count in between.)
		 */
		tried = 1;
		nfast++
	   }
		atomic {	/* mmn_itree_probe_miss() */
			if
			:: !(HITS(0, r) || HITS(1, r)) -> fast = 1
			:: true -> skip		/* a hit, or it gave up */
			fi
		};
		if
		:: !fast ->
			atomic {	/* inv_start_range() */
				mmlock == 0 ->
				nactive++;
				nfast = nfast - tried;
				tried = 0;
				hit = (HITS(0, r) || HITS(1, r));
				if
				:: hit && !ODD(seq) -> seq = seq | 1
				:: else -> skip
				fi;
				cur = seq
			}
		:: else -> tried = 0
		fi;
		/*
		 * The walk, without the lock (the odd seq keeps the tree still):
		 * read the tree, then call; another thread may run in between.
		 */
		do
		:: atomic { !hit || n >= NSUB || again -> break }
		:: atomic { hit && n < NSUB && !again && !HITS(n, r) -> n++ }
		:: hit && n < NSUB && !again && HITS(n, r) -> atomic { cb_start(n) }
		od;
		/* the finish pass, in walk order, after every first pass */
		firstdone = 1;
		do
#if MUT == 5
		:: atomic { fin == 3 -> fin = 2 }	/* loses the first entry */
#endif
		:: atomic { (fin & 1) -> cb_finish(0) }
		:: atomic { !(fin & 1) && (fin & 2) -> cb_finish(1) }
		:: atomic { fin == 0 -> break }
		od;
		assert(done == started);			/* (4) all ran */
		atomic { firstdone = 0; started = 0; done = 0 }
		if
		:: again ->
			skip	/* -EAGAIN: the core closes the region, nothing changes */
		:: else ->
			atomic { cpu_change() }
		fi;
		if
		:: fast -> fast_end()
		:: else -> inv_end()
		fi
	:: atomic { k >= KINV -> break }
	od
}

/* mmn_interval_read_begin() */
inline read_begin(n, w)
{
#if MUT == 7
	d = seq;
	s = nseq[n];
	if
	:: s != d -> skip
#else
	s = nseq[n];
	if
	:: s != seq -> skip				/* fast path */
#endif
	:: else ->
#if MUT != 1
		atomic {
			mmlock == 0 -> mmlock = 1;
			if
			:: seq == s ->
				nr_waiters++;
				do
				:: seq == s -> cond_wait(w)
				:: else -> break
				od;
				nr_waiters--
			:: else -> skip
			fi;
			mmlock = 0
		}
#else
		skip
#endif
	fi;
	d = 0
}

/*
 * A device fault on page p of notifier n (spec §8.1): read_begin, look the
 * page up, take the user lock, read_retry, install or start again.
 */
inline fault(n, w)
{
	do
	:: read_begin(n, w);
		snap[w] = p + 1;			/* hmm_range_fault */
		atomic {				/* user lock */
			if
			:: nseq[n] != s ->		/* read_retry: again */
				s = 0;
				snap[w] = 0
			:: else ->
				assert(snap[w] == p + 1);	/* (1) */
				mval[IDX(n, p)] = 1;
				tlb[IDX(n, p)] = 1;
				stale[IDX(n, p)] = 0;
				s = 0;
				snap[w] = 0;
				p = 0;
				break
			fi
		}
	od
}

proctype Reader(byte n; byte w)
{
	byte f, p, s, d;

	do
	:: atomic {
		f < NFAULT ->
		if
		:: p = 0
		:: (COV(n) & 2) -> p = 1
		fi;
		f++
	   }
		fault(n, w)
	:: atomic { f >= NFAULT -> break }
	od
}

/* mmn_interval_notifier_insert() */
inline insert(n)
{
	if
	:: ODD(seq) ->				/* fully excluded: defer */
		st[n] = S_PENDING_INSERT;
		nd++;
		nseq[n] = seq
#if MUT == 8
	:: nactive > 0 && !ODD(seq) ->		/* ignores lock-free regions */
#else
	:: nactive + nfast > 0 && !ODD(seq) ->	/* partially excluded */
#endif
#if MUT == 3
		st[n] = S_IN_TREE;
		nseq[n] = DEC(seq)
#else
		seq = seq | 1;
		st[n] = S_IN_TREE;
		nseq[n] = seq
#endif
#if MUT == 8
	:: nactive == 0 && !ODD(seq) ->		/* idle */
#else
	:: nactive + nfast == 0 && !ODD(seq) ->	/* idle */
#endif
		st[n] = S_IN_TREE;
		nseq[n] = DEC(seq)
	fi;
	gone[n] = 0
}

/* mmn_interval_notifier_remove(), then the owner tears its mirror down. */
inline remove(n, w)
{
	atomic {
		mmlock == 0 -> mmlock = 1;
		if
		:: st[n] == S_PENDING_INSERT ->		/* never reached the tree */
			nd--;
			st[n] = S_NONE
		:: st[n] == S_IN_TREE && !ODD(seq) ->	/* no walk is running */
			st[n] = S_NONE
		:: st[n] == S_IN_TREE && ODD(seq) ->
#if MUT == 2
			st[n] = S_NONE
#else
			s = seq;
			nd++;
			st[n] = S_PENDING_REMOVE;
			nr_waiters++;
			do
			:: seq == s -> cond_wait(w)
			:: else -> break
			od;
			nr_waiters--;
			assert(st[n] == S_NONE)
#endif
		fi;
		s = 0;
		gone[n] = 1;
		p = 0;
		do
		:: p < NPAGE ->
			mval[IDX(n, p)] = 0;
			tlb[IDX(n, p)] = 0;
			stale[IDX(n, p)] = 0;
			p++
		:: else -> break
		od;
		p = 0;
		mmlock = 0;
		l++
	}
}

proctype Owner(byte n; byte w)
{
	byte l, p, s, d;

	do
	:: atomic {
		l < NLIFE && mmlock == 0 ->
		insert(n);
		/* then maybe fault a page, then remove */
		if
		:: p = 0
		:: p = 1
		:: p = 2	/* no fault */
		fi
	   }
		if
		:: p < 2 -> fault(n, w)
		:: else -> p = 0
		fi;
		remove(n, w)
	:: atomic { l >= NLIFE -> break }
	od
}

active proctype Monitor()
{
end:	atomic { ready && !(INVARIANT) -> assert(false) }
}

init
{
	atomic {
		if
		:: seq = SEQMOD - 2
		:: seq = 0
		fi;
		/* n0: inserted while idle */
		st[0] = S_IN_TREE;
		nseq[0] = DEC(seq);
		ready = 1;
		run Reader(0, 0);
		run Owner(1, 1);
		run Inv(0);
#if NINV > 1
		run Inv(1)
#endif
	}
}
