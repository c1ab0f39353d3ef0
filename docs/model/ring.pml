/*
 * A Promela model of goipc's ring wakeup protocol (goipc/eventcount.go,
 * goipc/ring.go, goipc/conn.go): one producer, one consumer, a ring of CAP
 * slots, a data eventcount (consumer sleeps while empty) and a space
 * eventcount (producer sleeps while full). Each Promela statement is atomic
 * and interleavings are sequentially consistent, matching Go's sync/atomic.
 *
 * A futex wait is modelled as "block until the epoch differs from the one
 * read when the wait was announced": a wake always bumps the epoch first,
 * so a waiter that has not reached futex_wait yet gets EAGAIN, and one that
 * sleeps is woken. Timeout slices are left out on purpose: the protocol must
 * not need them.
 *
 * Check (make model-check):
 *   spin -a ring.pml && cc -o pan pan.c && ./pan      -> no errors
 * With -DLOAD_BEFORE_PUBLISH the producer reads the waiter count before its
 * store of head is visible (what a plain release store allows on x86 via
 * the store buffer); spin then finds the lost wakeup as an invalid end
 * state (the consumer asleep forever).
 */
#define N   4   /* messages */
#define CAP 2   /* ring slots */

byte head = 0;      /* published by the producer */
byte tail = 0;      /* published by the consumer */
byte dWaiters = 0;  /* data eventcount: waiters */
byte dEpoch = 0;    /*                  epoch (futex word) */
byte sWaiters = 0;  /* space eventcount */
byte sEpoch = 0;
byte received = 0;

active proctype Producer() {
	byte e;
	bit w;
	do
	:: head < N ->
		if
		:: head - tail < CAP ->
#ifdef LOAD_BEFORE_PUBLISH
			w = (dWaiters > 0);
			head++;
#else
			head++;              /* SYNC: seq-cst store of head */
			w = (dWaiters > 0);  /* SYNC: then load of waiters */
#endif
			if
			:: w -> dEpoch++     /* epoch++ then futex_wake */
			:: else -> skip
			fi
		:: else ->
			atomic { sWaiters++; e = sEpoch }  /* prepare (one RMW) */
			if
			:: head - tail < CAP -> skip       /* re-check: space after all */
			:: else -> (sEpoch != e)           /* futex_wait */
			fi;
			sWaiters--                         /* cancel */
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
		:: head != tail ->
			received++;
			tail++;              /* SYNC: seq-cst store of tail */
			w = (sWaiters > 0);  /* SYNC: then load of waiters */
			if
			:: w -> sEpoch++
			:: else -> skip
			fi
		:: else ->
			atomic { dWaiters++; e = dEpoch }
			if
			:: head != tail -> skip
			:: else -> (dEpoch != e)
			fi;
			dWaiters--
		fi
	:: else -> break
	od
}

/* Both sides finish: every message delivered, nobody asleep. */
ltl done { <> (received == N && head == N) }
