//! Server transaction (RFC 3261 §17.2): the request the proxy received.

use std::time::Duration;

use super::Timers;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Completed,
    Confirmed,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// G: retransmit a non-2xx final INVITE response over UDP until the ACK.
    Retransmit,
    /// H: give up waiting for the ACK.
    AckWait,
    /// I / J / wait timer: absorb retransmissions, then end.
    Linger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the last response again.
    ResendLast,
    Start(Timer, Duration),
    Stop(Timer),
    Done,
}

#[derive(Clone, Debug)]
pub struct ServerTxn {
    invite: bool,
    reliable: bool,
    state: State,
    interval: Duration,
    timers: Timers,
}

impl ServerTxn {
    pub fn new(invite: bool, reliable: bool, timers: Timers) -> ServerTxn {
        ServerTxn {
            invite,
            reliable,
            state: State::Proceeding,
            interval: timers.t1,
            timers,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// A retransmission of the request: resend whatever was answered last.
    pub fn on_retransmission(&self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed => vec![Action::ResendLast],
            _ => vec![],
        }
    }

    /// The proxy sends a response upstream.
    pub fn on_send(&mut self, code: u16) -> Vec<Action> {
        if self.state != State::Proceeding || code < 200 {
            return vec![];
        }
        if self.invite && code >= 300 {
            self.state = State::Completed;
            let mut a = Vec::new();
            if !self.reliable {
                a.push(Action::Start(Timer::Retransmit, self.interval));
            }
            a.push(Action::Start(Timer::AckWait, self.timers.t1 * 64));
            return a;
        }
        // 2xx to INVITE, or any final to another method.
        self.state = State::Completed;
        vec![Action::Start(Timer::Linger, self.timers.wait)]
    }

    /// An ACK for the non-2xx final response.
    pub fn on_ack(&mut self) -> Vec<Action> {
        if !(self.invite && self.state == State::Completed) {
            return vec![];
        }
        self.state = State::Confirmed;
        let linger = if self.reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        };
        vec![
            Action::Stop(Timer::Retransmit),
            Action::Stop(Timer::AckWait),
            Action::Start(Timer::Linger, linger),
        ]
    }

    pub fn on_timer(&mut self, t: Timer) -> Vec<Action> {
        match (t, self.state) {
            (Timer::Retransmit, State::Completed) => {
                self.interval = (self.interval * 2).min(self.timers.t2);
                vec![
                    Action::ResendLast,
                    Action::Start(Timer::Retransmit, self.interval),
                ]
            }
            (Timer::AckWait, State::Completed)
            | (Timer::Linger, State::Completed | State::Confirmed) => {
                self.state = State::Terminated;
                vec![Action::Stop(Timer::Retransmit), Action::Done]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_invite_answer_is_retransmitted_until_ack() {
        let mut s = ServerTxn::new(true, false, Timers::default());
        assert!(s.on_send(180).is_empty());
        assert_eq!(s.on_retransmission(), vec![Action::ResendLast]);
        let a = s.on_send(486);
        assert_eq!(
            a,
            vec![
                Action::Start(Timer::Retransmit, Duration::from_millis(500)),
                Action::Start(Timer::AckWait, Duration::from_secs(32))
            ]
        );
        assert_eq!(
            s.on_timer(Timer::Retransmit),
            vec![
                Action::ResendLast,
                Action::Start(Timer::Retransmit, Duration::from_secs(1))
            ]
        );
        let a = s.on_ack();
        assert!(a.contains(&Action::Stop(Timer::Retransmit)));
        assert_eq!(s.state(), State::Confirmed);
        assert!(s.on_timer(Timer::Retransmit).is_empty());
        assert_eq!(
            s.on_timer(Timer::Linger),
            vec![Action::Stop(Timer::Retransmit), Action::Done]
        );
    }

    #[test]
    fn no_ack_gives_up_after_timer_h() {
        let mut s = ServerTxn::new(true, false, Timers::default());
        s.on_send(404);
        assert_eq!(
            s.on_timer(Timer::AckWait),
            vec![Action::Stop(Timer::Retransmit), Action::Done]
        );
        assert_eq!(s.state(), State::Terminated);
    }

    #[test]
    fn non_invite_final_lingers_for_retransmissions() {
        let mut s = ServerTxn::new(false, false, Timers::default());
        assert_eq!(
            s.on_send(200),
            vec![Action::Start(Timer::Linger, Duration::from_secs(5))]
        );
        assert_eq!(s.on_retransmission(), vec![Action::ResendLast]);
        assert!(s.on_ack().is_empty());
    }
}
