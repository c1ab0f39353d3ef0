/*
 * A Promela model of a connection's pollable descriptor (NotifyFD,
 * goipc_conn_fd) at the end of the connection (goipc/notify.go,
 * goipc/conn.go tryFailed and resetNotify): an event loop's receive
 * direction, the peer that publishes messages and then goes away, and
 * this process's watcher that relays the peer's doorbell bytes and its
 * end (EOF on the socket) to the descriptor. ring.pml checks the wakeup
 * protocol between the processes; this model checks the in-process step
 * after it: that the descriptor cannot be left quiet while the loop
 * waits on it for a message or for the end.
 *
 * The loop follows the documented rules: call with timeout 0 until the
 * call reports "nothing now" (which resets the descriptor, arms the
 * doorbell and looks once more), then wait until the descriptor is
 * readable, then call again. A call first checks the connection's state
 * (a gone peer: take what is left, then end) and then the ring.
 *
 * The watcher signals in two steps, as the code does: it stores that the
 * peer is gone (or takes a doorbell byte), then makes the descriptor
 * readable. A call that checked the state before the store and resets
 * the descriptor after the signal reads the signal away; the end is
 * signalled only once, so the reset must look at the state again
 * (resetNotify).
 *
 * Check (make model-check):
 *   spin -a notify.pml && cc -o pan pan.c && ./pan      -> no errors
 * Seeded bug, found as an invalid end state (the loop waiting forever):
 *   -DNO_RECHECK_AFTER_RESET  the reset does not look at the state (the
 *                             code before the fifth session).
 */
#define N 2   /* messages the peer publishes before it goes away */

byte head = 0;     /* messages published by the peer */
byte taken = 0;    /* messages the loop has taken */
bit  bell = 0;     /* doorbell flag in the segment */
byte sock = 0;     /* doorbell bytes on the socket */
bit  eof = 0;      /* the peer closed its socket */
bit  gone = 0;     /* peerGone, stored by the watcher */
bit  readable = 0; /* the eventfd holds a count */

active proctype Peer() {
	do
	:: head < N ->
		head++;                 /* publish (seq-cst) */
		atomic { if            /* notify: test-and-clear, ring once */
		:: bell -> bell = 0; sock++
		:: else -> skip
		fi }
	:: else -> break
	od;
	eof = 1                        /* exit: the kernel closes the socket */
}

active proctype Watcher() {
	do
	:: sock > 0 -> sock = 0; readable = 1         /* a doorbell: signal */
	:: sock == 0 && eof -> gone = 1; readable = 1; break /* store, then signal */
	od
}

active proctype Loop() {
	do
	:: gone ->                     /* the call's state check */
		taken = head;          /* finalCheck: what is left first */
		break
	:: !gone ->
		if
		:: taken < head -> taken++     /* the call takes a message */
		:: taken == head ->            /* nothing: tryFailed */
			readable = 0;          /* reset: read the eventfd */
#ifndef NO_RECHECK_AFTER_RESET
			if                     /* resetNotify */
			:: gone -> readable = 1
			:: else -> skip
			fi;
#endif
			bell = 1;              /* arm */
			if                     /* look once more */
			:: taken < head -> bell = 0; taken++
			:: else -> readable    /* wait on the descriptor */
			fi
		fi
	od;
	assert(taken == N)
}
