/*
 * A Promela model of how calls register with the ring poller and how the
 * poller stops (goipc/poller.go add, remove, sweepUntilIdle, armAll).
 * ring.pml checks the wakeup protocol between the processes, with the
 * poller's arm-then-check and take-back; this model checks the step
 * inside the process: that a call which put itself on the poller's list
 * is always looked at again, by a sweep or through the doorbell the
 * poller arms before it sleeps, so that it cannot wait forever.
 *
 * A parking call takes only the registration lock (regMu) to put its
 * entry on the pending list; the poller moves pending entries to its
 * own list under both locks, at the start of every sweep and before it
 * stops. Whether the poller is active is changed only under regMu: a
 * call either finds it active (the poller will take the entry before it
 * stops) or makes it active and kicks the poller. A call that returns
 * takes its entry back from wherever it is: pending (regMu), released
 * by the poller (no lock), or listed or armed (mu).
 *
 * The peer's publish and its test-and-clear of an armed doorbell are one
 * step here: their ordering against the arm is ring.pml's subject.
 *
 * Check (make model-check):
 *   spin -a poller.pml && cc -o pan pan.c && ./pan      -> no errors
 * Seeded bugs, each found as an invalid end state (a call waiting
 * forever):
 *   -DSTOP_OUTSIDE_LOCK   the poller clears active after it lets go of
 *                         regMu (a call registering between the two
 *                         finds it active and kicks nothing)
 *   -DNO_LIST_BEFORE_ARM  the poller stops without moving the calls
 *                         registered during its last sweep to its list
 * and one found as an assertion violation (a returned call's entry left
 * on a list):
 *   -DREMOVE_SKIPS_PENDING  a returning call does not take its entry off
 *                           the pending list
 */
#define CALLS 2
#ifndef MSGS
#define MSGS 1    /* messages the peer publishes for each call; -DMSGS=2
                     checks 20.0 M states in 26 s and 1.5 GB here */
#endif

byte word[CALLS];      /* messages published for each call */
byte seen[CALLS];      /* the entry's word when its call last looked */
bit pending[CALLS];    /* on ringPoller.pending */
bit listed[CALLS];     /* on ringPoller.entries */
bit armed[CALLS];      /* on ringPoller.armed, doorbell armed */
bit released[CALLS];   /* taken off by the poller, woken */
bit bell[CALLS];       /* a token on the call's doorbell channel */
bit sweeping = 0;
bit mu = 0;
bit regMu = 0;
chan kick = [1] of { bit };

inline lock(m)   { atomic { m == 0 -> m = 1 } }
inline unlock(m) { m = 0 }
inline wake(i)   { atomic { released[i] = 1; bell[i] = 1 } }

/* listPending: both locks held */
inline listPending() {
	d_step {
		j = 0;
		do
		:: j < CALLS -> if :: pending[j] -> pending[j] = 0; listed[j] = 1 :: else fi; j++
		:: else -> break
		od;
		j = 0
	}
}

inline anyListed() {
	d_step {
		any = 0; j = 0;
		do
		:: j < CALLS -> any = any | listed[j]; j++
		:: else -> break
		od;
		j = 0
	}
}

proctype Peer(byte i) {
	do
	:: word[i] < MSGS ->
		atomic { word[i]++;
			if :: armed[i] -> armed[i] = 0; bell[i] = 1 :: else fi }
	:: else -> break
	od
}

proctype Call(byte i) {
	byte got = 0;
	bit wasActive;
	do
	:: got == MSGS -> break
	:: got < MSGS && word[i] > got -> got++          /* ready() */
	:: got < MSGS && word[i] == got ->
		/* add */
		seen[i] = got; released[i] = 0;
		lock(regMu);
		pending[i] = 1;
		wasActive = sweeping; sweeping = 1;
		unlock(regMu);
		if :: !wasActive -> if :: kick!1 :: full(kick) -> skip fi
		   :: else fi;
		/* ready() once more after the registration, else wait */
		if :: word[i] > got -> skip
		   :: else -> bell[i] == 1
		fi;
		bell[i] = 0;
		/* remove */
		lock(regMu);
		if
#ifndef REMOVE_SKIPS_PENDING
		:: pending[i] -> pending[i] = 0; unlock(regMu)
		:: else ->
#else
		:: true ->
#endif
			unlock(regMu);
			if
			:: released[i] -> skip
			:: else ->
				lock(mu);
				armed[i] = 0;     /* disarm if armed */
				listed[i] = 0;
				unlock(mu)
			fi
		fi;
		/* the returned call's entry is on no list */
		assert(!pending[i] && !listed[i] && !armed[i])
	od
}

active proctype Poller() {
	byte j; bit any; byte k;
end:	do
	:: kick?_ ->
		do
		:: lock(mu); lock(regMu); listPending(); unlock(regMu);
			anyListed();
			if
			:: !any ->
				lock(regMu); listPending(); anyListed();
				if
				:: !any ->
#ifdef STOP_OUTSIDE_LOCK
					unlock(regMu); sweeping = 0;
#else
					sweeping = 0; unlock(regMu);
#endif
					unlock(mu); break
				:: else -> unlock(regMu)
				fi
			:: else
			fi;
			/* a sweep */
			k = 0;
			do
			:: k < CALLS ->
				if :: listed[k] && word[k] != seen[k] -> listed[k] = 0; wake(k)
				   :: else fi;
				k++
			:: else -> break
			od;
			k = 0;
			if
			:: unlock(mu)                  /* sweep again */
			:: true ->                     /* idle: arm everything, stop */
				lock(regMu);
#ifndef NO_LIST_BEFORE_ARM
				listPending();
#endif
				sweeping = 0; unlock(regMu);
				k = 0;
				do
				:: k < CALLS ->
					if
					:: listed[k] -> listed[k] = 0;
						atomic { if :: word[k] != seen[k] -> wake(k)
						            :: else -> armed[k] = 1 fi }
					:: else
					fi;
					k++
				:: else -> break
				od;
				k = 0; unlock(mu); break
			fi
		od
	od
}

init {
	atomic {
		run Peer(0); run Peer(1);
		run Call(0); run Call(1)
	}
}
