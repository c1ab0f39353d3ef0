package goipc

import (
	"errors"
	"testing"
	"time"
)

// alarmPair is a connection whose receives park on the doorbell at once
// (no spin, no futex stage: the stage the alarm serves), and its peer.
func alarmPair(t *testing.T) (waiter, peer *Conn) {
	peer, waiter = pair(t, nil, &Options{Spin: SpinNever})
	waiter.doorbellOnly = true
	return waiter, peer
}

// TestAlarmOfAnEarlierWaitDoesNotEndALaterOne: the alarm an earlier wait
// left set (for an earlier deadline) goes off during a wait with a later
// deadline; the waiter parks again, sets the alarm for its own deadline,
// and gets the message sent after that, not ErrTimeout.
func TestAlarmOfAnEarlierWaitDoesNotEndALaterOne(t *testing.T) {
	waiter, peer := alarmPair(t)
	alarm := &waiter.alarms[dirRecv]
	waiter.setAlarm(dirRecv, time.Now().Add(5*time.Millisecond)) // as a wait that ended early leaves it
	early := alarm.at.Load()
	type result struct {
		msg []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := waiter.RecvTimeout(20 * time.Second)
		got <- result{m, err}
	}()
	// The alarm is set later than early only once it went off and the
	// waiter, still waiting, set it for its own deadline.
	waitUntil(t, "the waiter setting the alarm for its own deadline", func() bool { return alarm.at.Load() > early })
	if err := peer.Send([]byte("after the alarm")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || string(r.msg) != "after the alarm" {
		t.Fatalf("RecvTimeout = %q, %v; want the message sent after the early alarm", r.msg, r.err)
	}
}

// TestAlarmSetForLaterIsBroughtForward: a wait whose deadline comes before
// the alarm an earlier wait left set (a long timeout) sets it earlier, and
// times out at its own deadline.
func TestAlarmSetForLaterIsBroughtForward(t *testing.T) {
	waiter, _ := alarmPair(t)
	alarm := &waiter.alarms[dirRecv]
	waiter.setAlarm(dirRecv, time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := waiter.RecvTimeout(20 * time.Millisecond)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("RecvTimeout on an empty ring: %v, want ErrTimeout", err)
		}
	case <-time.After(time.Minute): // not a timing check: the hour-long alarm would keep it an hour
		t.Fatal("a 20 ms RecvTimeout still waits after a minute: the alarm set for an hour was not brought forward")
	}
	if at := alarm.at.Load(); at != 0 {
		t.Fatalf("the alarm is still set, %v ahead; it should have gone off at the wait's deadline", time.Duration(at)-time.Since(monoOrigin))
	}
}

// TestAlarmsStopWithTheConn: a released Conn stops its alarms, so their
// timers do not hold it until they go off.
func TestAlarmsStopWithTheConn(t *testing.T) {
	waiter, _ := alarmPair(t)
	waiter.setAlarm(dirRecv, time.Now().Add(time.Hour))
	timer := waiter.alarms[dirRecv].t.Load()
	waiter.Close()
	if timer.Stop() {
		t.Fatal("the alarm's timer was still running after Close")
	}
}
