//! Client transaction (RFC 3261 §17.1): one per branch the proxy sends.

use std::time::Duration;

use super::Timers;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Request sent, nothing heard (Calling / Trying).
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A / E: retransmit the request over UDP.
    Retransmit,
    /// B / F, as fr_timer / fr_inv_timer: no final response in time.
    Final,
    /// D / K: absorb response retransmissions, then end.
    Linger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// (Re)transmit the request.
    Send,
    /// Send the hop-by-hop ACK for a non-2xx final response to an INVITE.
    SendAck,
    /// Hand the response to the proxy core.
    PassUp(u16),
    /// No final response in time.
    TimedOut,
    Start(Timer, Duration),
    Stop(Timer),
    /// The transaction is over.
    Done,
}

#[derive(Clone, Debug)]
pub struct ClientTxn {
    invite: bool,
    reliable: bool,
    state: State,
    interval: Duration,
    timers: Timers,
}

impl ClientTxn {
    pub fn new(invite: bool, reliable: bool, timers: Timers) -> ClientTxn {
        ClientTxn {
            invite,
            reliable,
            state: State::Calling,
            interval: timers.t1,
            timers,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Sends the request and arms the timers.
    pub fn start(&mut self) -> Vec<Action> {
        let mut a = vec![Action::Send];
        if !self.reliable {
            a.push(Action::Start(Timer::Retransmit, self.interval));
        }
        a.push(Action::Start(Timer::Final, self.timers.fr));
        a
    }

    pub fn on_response(&mut self, code: u16) -> Vec<Action> {
        match self.state {
            State::Calling | State::Proceeding => {}
            State::Completed => {
                // A retransmitted final response: re-ACK a non-2xx INVITE answer.
                return if self.invite && code >= 300 {
                    vec![Action::SendAck]
                } else {
                    vec![]
                };
            }
            State::Terminated => return vec![],
        }
        let linger = if self.reliable {
            Duration::ZERO
        } else if self.invite {
            Duration::from_secs(32)
        } else {
            self.timers.t2.max(Duration::from_secs(5))
        };
        match code {
            100..=199 => {
                self.state = State::Proceeding;
                if self.invite {
                    vec![
                        Action::Stop(Timer::Retransmit),
                        Action::Start(Timer::Final, self.timers.fr_inv),
                        Action::PassUp(code),
                    ]
                } else {
                    self.interval = self.timers.t2;
                    vec![Action::PassUp(code)]
                }
            }
            200..=299 if self.invite => {
                // The ACK for a 2xx is end-to-end; retransmitted 2xx go by Via.
                self.state = State::Terminated;
                vec![
                    Action::Stop(Timer::Retransmit),
                    Action::Stop(Timer::Final),
                    Action::PassUp(code),
                    Action::Done,
                ]
            }
            _ => {
                self.state = State::Completed;
                let mut a = vec![Action::Stop(Timer::Retransmit), Action::Stop(Timer::Final)];
                if self.invite {
                    a.push(Action::SendAck);
                }
                a.push(Action::PassUp(code));
                a.push(Action::Start(Timer::Linger, linger));
                a
            }
        }
    }

    pub fn on_timer(&mut self, t: Timer) -> Vec<Action> {
        match (t, self.state) {
            (Timer::Retransmit, State::Calling) | (Timer::Retransmit, State::Proceeding)
                if !self.reliable && (self.state == State::Calling || !self.invite) =>
            {
                self.interval = if self.invite {
                    self.interval * 2
                } else {
                    (self.interval * 2).min(self.timers.t2)
                };
                vec![
                    Action::Send,
                    Action::Start(Timer::Retransmit, self.interval),
                ]
            }
            (Timer::Final, State::Calling | State::Proceeding) => {
                self.state = State::Terminated;
                vec![
                    Action::Stop(Timer::Retransmit),
                    Action::TimedOut,
                    Action::Done,
                ]
            }
            (Timer::Linger, State::Completed) => {
                self.state = State::Terminated;
                vec![Action::Done]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timers {
        Timers::default()
    }

    #[test]
    fn invite_over_udp_retransmits_doubling_until_provisional() {
        let mut c = ClientTxn::new(true, false, t());
        assert_eq!(
            c.start(),
            vec![
                Action::Send,
                Action::Start(Timer::Retransmit, Duration::from_millis(500)),
                Action::Start(Timer::Final, Duration::from_secs(30))
            ]
        );
        assert_eq!(
            c.on_timer(Timer::Retransmit),
            vec![
                Action::Send,
                Action::Start(Timer::Retransmit, Duration::from_secs(1))
            ]
        );
        assert_eq!(
            c.on_timer(Timer::Retransmit),
            vec![
                Action::Send,
                Action::Start(Timer::Retransmit, Duration::from_secs(2))
            ]
        );
        let a = c.on_response(180);
        assert_eq!(
            a,
            vec![
                Action::Stop(Timer::Retransmit),
                Action::Start(Timer::Final, Duration::from_secs(120)),
                Action::PassUp(180)
            ]
        );
        assert_eq!(c.state(), State::Proceeding);
        // No more retransmissions once proceeding.
        assert!(c.on_timer(Timer::Retransmit).is_empty());
    }

    #[test]
    fn invite_negative_final_is_acked_and_reacked_on_retransmission() {
        let mut c = ClientTxn::new(true, false, t());
        c.start();
        let a = c.on_response(486);
        assert!(a.contains(&Action::SendAck) && a.contains(&Action::PassUp(486)));
        assert_eq!(c.state(), State::Completed);
        assert_eq!(c.on_response(486), vec![Action::SendAck]);
        assert_eq!(c.on_timer(Timer::Linger), vec![Action::Done]);
    }

    #[test]
    fn invite_2xx_terminates_at_once() {
        let mut c = ClientTxn::new(true, true, t());
        assert_eq!(
            c.start(),
            vec![
                Action::Send,
                Action::Start(Timer::Final, Duration::from_secs(30))
            ]
        );
        let a = c.on_response(200);
        assert_eq!(a.last(), Some(&Action::Done));
        assert!(!a.contains(&Action::SendAck));
        assert!(c.on_response(200).is_empty());
    }

    #[test]
    fn non_invite_retransmits_capped_at_t2_and_times_out() {
        let mut c = ClientTxn::new(false, false, t());
        c.start();
        let mut last = Duration::ZERO;
        for _ in 0..6 {
            if let Some(Action::Start(Timer::Retransmit, d)) =
                c.on_timer(Timer::Retransmit).get(1).copied()
            {
                last = d;
            }
        }
        assert_eq!(last, Duration::from_secs(4));
        assert_eq!(c.on_response(100), vec![Action::PassUp(100)]);
        // Proceeding non-INVITE keeps retransmitting at T2.
        assert_eq!(
            c.on_timer(Timer::Retransmit),
            vec![
                Action::Send,
                Action::Start(Timer::Retransmit, Duration::from_secs(4))
            ]
        );
        assert_eq!(
            c.on_timer(Timer::Final),
            vec![
                Action::Stop(Timer::Retransmit),
                Action::TimedOut,
                Action::Done
            ]
        );
        assert!(c.on_response(200).is_empty());
    }
}
