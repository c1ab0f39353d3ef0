/*
 * A Promela model of goipc's ring wakeup protocol, version 2
 * (goipc/eventcount.go, goipc/ring.go, goipc/conn.go): one producer, one
 * consumer, a ring of CAP slots, a data eventcount (the consumer sleeps
 * while the ring is empty) and a space eventcount (the producer sleeps
 * while it is full). Each Promela statement is atomic and interleavings
 * are sequentially consistent, matching Go's sync/atomic.
 *
 * A waiter sleeps one of two ways, chosen nondeterministically each time
 * (the code picks by its futex window and the process's futex slots):
 *  - futex: announce (waiters++ and read the epoch, one RMW), re-check,
 *    block until the epoch differs from the one read, waiters--. A wake
 *    always bumps the epoch first, so a waiter that has not reached
 *    futex_wait yet gets EAGAIN, and one that sleeps is woken.
 *  - doorbell: set the doorbell flag (one RMW), re-check, block until a
 *    byte is on the socket, then read every pending byte. The notifier
 *    clears the flag with an atomic test-and-clear and writes one byte
 *    only if it was the one to clear it.
 *    While it blocks, the ring poller may take the wait back
 *    (goipc/poller.go takeBack): a test-and-clear of the flag. If the
 *    notifier cleared it first, its byte is on the way and the wait goes
 *    on; if the poller cleared it, the wait is a sweep again: it ends when
 *    a sweep sees the condition, or the poller arms the flag again and
 *    re-checks (armAll), as at the start. Take-backs are paid for by
 *    parked calls in the code; here they are bounded by TAKE_BACKS.
 * Timeout slices are left out on purpose: the protocol must not need them.
 *
 * The consumer may hold freed space back (goipc/ring.go consume: while the
 * producer waits for space it returns space a quarter ring at a time): it
 * keeps its own position (ctail) and publishes tail later, but always
 * once it has read everything it has seen. The model lets it hold back
 * after any message that leaves the ring non-empty, a superset of what
 * the code does.
 *
 * Check (make model-check):
 *   spin -a ring.pml && cc -o pan pan.c && ./pan      -> no errors
 * Seeded bugs, each found by spin as an invalid end state (a side asleep
 * forever, a lost wakeup):
 *   -DLOAD_BEFORE_PUBLISH  the producer reads the eventcount before its
 *                          store of head is visible (what a plain release
 *                          store allows on x86 via the store buffer);
 *   -DARM_AFTER_CHECK      a doorbell waiter re-checks the ring before it
 *                          sets the flag (the check-then-announce race);
 *   -DHOLD_BACK_WHEN_EMPTY the consumer holds freed space back even after
 *                          it has read everything (and then waits for
 *                          data while the producer waits for space);
 *   -DREARM_WITHOUT_CHECK  the poller arms a taken-back wait again
 *                          without re-checking the ring (a message
 *                          published while the wait was un-armed rings
 *                          nothing and is never seen).
 */
#define N   4   /* messages */
#ifndef TAKE_BACKS
#define TAKE_BACKS 2
#endif
#define CAP 2   /* ring slots */

byte head = 0;      /* published by the producer */
byte tail = 0;      /* published by the consumer */
byte ctail = 0;     /* the consumer's own position (tail once published) */
byte dWaiters = 0;  /* data eventcount: futex waiters */
bit  dBell = 0;     /*                  doorbell flag */
byte dEpoch = 0;    /*                  epoch (futex word) */
byte sWaiters = 0;  /* space eventcount */
bit  sBell = 0;
byte sEpoch = 0;
byte toConsumer = 0; /* doorbell bytes on the consumer's socket */
byte toProducer = 0; /* doorbell bytes on the producer's socket */
byte received = 0;
byte takeBacks = TAKE_BACKS; /* take-backs the poller may still make */

/* notify: the notifier's half, after its seq-cst store of the position. */
inline notify(waiters, bell, epoch, socket) {
	w = (waiters > 0);
	if
	:: w -> epoch++             /* epoch++ then futex_wake */
	:: else -> skip
	fi;
	atomic {                    /* test-and-clear of the flag (one RMW) */
		if
		:: bell -> bell = 0; socket++
		:: else -> skip
		fi
	}
}

/* sleep: the waiter's half; cond is the condition it waits for. */
#ifdef REARM_WITHOUT_CHECK
#define REARM(bell, cond) bell = 1
#else
#define REARM(bell, cond) \
	bell = 1; \
	if \
	:: cond -> bell = 0; break \
	:: else -> skip \
	fi
#endif

/* the blocked part of a doorbell wait, with the poller's take-backs */
#define SLEEP_ON_BELL(bell, cond) \
	do \
	:: (socket > 0) -> socket = 0; break \
	:: atomic { takeBacks > 0 && bell -> takeBacks--; bell = 0 } -> \
		if \
		:: cond -> break \
		:: else -> REARM(bell, cond) \
		fi \
	od

#ifdef ARM_AFTER_CHECK
#define ARM_AND_CHECK(bell, cond) \
	if \
	:: cond -> skip \
	:: else -> bell = 1; SLEEP_ON_BELL(bell, cond) \
	fi
#else
#define ARM_AND_CHECK(bell, cond) \
	bell = 1; \
	if \
	:: cond -> bell = 0 \
	:: else -> SLEEP_ON_BELL(bell, cond) \
	fi
#endif

active proctype Producer() {
	byte e;
	bit w;
	do
	:: head < N ->
		if
		:: head - tail < CAP ->
#ifdef LOAD_BEFORE_PUBLISH
			w = (dWaiters > 0 || dBell);
			head++;
			if
			:: w -> dEpoch++; atomic { if :: dBell -> dBell = 0; toConsumer++ :: else -> skip fi }
			:: else -> skip
			fi
#else
			head++;              /* SYNC: seq-cst store of head */
			notify(dWaiters, dBell, dEpoch, toConsumer)
#endif
		:: else ->
			if
			:: atomic { sWaiters++; e = sEpoch }  /* futex: prepare (one RMW) */
				if
				:: head - tail < CAP -> skip       /* re-check: space after all */
				:: else -> (sEpoch != e)           /* futex_wait */
				fi;
				sWaiters--                         /* cancel */
			:: true ->                              /* doorbell */
#define socket toProducer
				ARM_AND_CHECK(sBell, head - tail < CAP)
#undef socket
			fi
		fi
	:: else -> break
	od
}

active proctype Consumer() {
	byte e;
	bit w;
	do
	:: received < N ->
		if
		:: head != ctail ->
			received++;
			ctail++;
			if
			:: true ->
				tail = ctail;        /* SYNC: seq-cst store of tail */
				notify(sWaiters, sBell, sEpoch, toProducer)
#ifdef HOLD_BACK_WHEN_EMPTY
			:: true -> skip          /* holds back, even with nothing left */
#else
			:: head != ctail -> skip /* holds back: more to read first */
#endif
			fi
		:: else ->
			if
			:: atomic { dWaiters++; e = dEpoch }
				if
				:: head != ctail -> skip
				:: else -> (dEpoch != e)
				fi;
				dWaiters--
			:: true ->
#define socket toConsumer
				ARM_AND_CHECK(dBell, head != ctail)
#undef socket
			fi
		fi
	:: else -> break
	od
}

/* Both sides finish: every message delivered, nobody asleep. */
ltl done { <> (received == N && head == N) }
