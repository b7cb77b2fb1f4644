//! Which events of a pulled batch apply now, and in which order: pure rules, no I/O.
//!
//! An event about problems applies when, for each problem, the consumer has applied the event
//! it must follow (`needs`) and not this one (`seq`); it is a repeat when it was applied
//! already; otherwise it came early and waits. Events are grouped into waves: a wave holds each
//! problem (and each other subject) at most once, and a problem's events go in successive
//! waves in its producer's order, so a wave can be applied kind by kind with multi-row
//! statements.

use std::collections::HashMap;

use uuid::Uuid;

use crate::routing::Position;

/// One event of the batch, as the plan sees it.
pub struct Item<'a> {
    pub positions: &'a [Position],
    /// The CloudEvents subject: orders events about no problem (a round, a sheet) among
    /// themselves.
    pub subject: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Apply in this wave (0 first).
    Apply { wave: usize },
    /// Applied before: acknowledge and drop.
    Repeat,
    /// Waits for the producer's event `waiting_for` about `problem`.
    Early { problem: Uuid, waiting_for: i64 },
}

pub struct Plan {
    pub steps: Vec<Step>,
    /// Each problem's counter once the applied events are in.
    pub last: HashMap<Uuid, i64>,
    pub waves: usize,
}

/// Plans `items` (in the order the stream delivered them) given each problem's last applied
/// counter (absent: none yet).
pub fn plan(items: &[Item<'_>], mut last: HashMap<Uuid, i64>) -> Plan {
    let mut steps: Vec<Option<Step>> = vec![None; items.len()];
    let mut problem_wave: HashMap<Uuid, usize> = HashMap::new();
    let mut subject_wave: HashMap<&str, usize> = HashMap::new();
    let mut waves = 0;
    // Events about no problem go in stream order, per subject.
    for (i, item) in items.iter().enumerate() {
        if item.positions.is_empty() {
            let wave = subject_wave.get(item.subject).map_or(0, |w| w + 1);
            subject_wave.insert(item.subject, wave);
            steps[i] = Some(Step::Apply { wave });
            waves = waves.max(wave + 1);
        }
    }
    // Events about problems, until nothing more can apply (a batch may hold a problem's events
    // in any order).
    loop {
        let mut progress = false;
        for (i, item) in items.iter().enumerate() {
            if steps[i].is_some() {
                continue;
            }
            let applied = |p: &Position| last.get(&p.problem_id).copied().unwrap_or(0);
            if item.positions.iter().any(|p| p.seq <= applied(p)) {
                // Each (problem, counter) belongs to one event, applied whole: it was this one.
                steps[i] = Some(Step::Repeat);
                continue;
            }
            if item.positions.iter().all(|p| applied(p) >= p.needs) {
                let wave =
                    item.positions.iter().filter_map(|p| problem_wave.get(&p.problem_id)).max().map_or(0, |w| w + 1);
                for p in item.positions {
                    last.insert(p.problem_id, p.seq);
                    problem_wave.insert(p.problem_id, wave);
                }
                steps[i] = Some(Step::Apply { wave });
                waves = waves.max(wave + 1);
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    let steps = items
        .iter()
        .zip(steps)
        .map(|(item, step)| {
            step.unwrap_or_else(|| {
                let missing = item
                    .positions
                    .iter()
                    .find(|p| last.get(&p.problem_id).copied().unwrap_or(0) < p.needs)
                    .expect("an event that did not apply waits for something");
                Step::Early { problem: missing.problem_id, waiting_for: missing.needs }
            })
        })
        .collect();
    Plan { steps, last, waves }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(problem: u128, seq: i64, needs: i64) -> Position {
        Position { problem_id: Uuid::from_u128(problem), seq, needs }
    }

    fn run(items: &[Vec<Position>], last: &[(u128, i64)]) -> Plan {
        let items: Vec<Item<'_>> = items.iter().map(|p| Item { positions: p, subject: "s" }).collect();
        plan(&items, last.iter().map(|(p, s)| (Uuid::from_u128(*p), *s)).collect())
    }

    #[test]
    fn a_problems_events_apply_in_order_whatever_order_they_came_in() {
        let plan = run(&[vec![at(1, 3, 2)], vec![at(1, 2, 1)], vec![at(1, 1, 0)]], &[]);
        assert_eq!(plan.steps, vec![Step::Apply { wave: 2 }, Step::Apply { wave: 1 }, Step::Apply { wave: 0 }]);
        assert_eq!(plan.last[&Uuid::from_u128(1)], 3);
        assert_eq!(plan.waves, 3);
    }

    #[test]
    fn an_event_whose_predecessor_is_missing_waits_and_so_do_its_successors() {
        let plan = run(&[vec![at(1, 3, 2)], vec![at(2, 1, 0)]], &[(1, 1)]);
        assert_eq!(plan.steps[0], Step::Early { problem: Uuid::from_u128(1), waiting_for: 2 });
        assert_eq!(plan.steps[1], Step::Apply { wave: 0 });
        assert_eq!(plan.last[&Uuid::from_u128(1)], 1);
    }

    #[test]
    fn repeats_are_recognised_by_their_counter() {
        let plan = run(&[vec![at(1, 2, 1)], vec![at(1, 2, 1)], vec![at(1, 1, 0)]], &[(1, 1)]);
        assert_eq!(plan.steps, vec![Step::Apply { wave: 0 }, Step::Repeat, Step::Repeat]);
    }

    #[test]
    fn kinds_a_consumer_does_not_handle_leave_gaps_it_does_not_wait_for() {
        // Counter 2 went to a kind this consumer never sees; 3 follows 1.
        let plan = run(&[vec![at(1, 3, 1)]], &[(1, 1)]);
        assert_eq!(plan.steps, vec![Step::Apply { wave: 0 }]);
    }

    #[test]
    fn an_event_about_several_problems_waits_for_all_of_them() {
        let sheet = vec![at(1, 2, 1), at(2, 2, 1)];
        let plan = run(&[sheet.clone(), vec![at(2, 1, 0)]], &[(1, 1)]);
        assert_eq!(plan.steps, vec![Step::Apply { wave: 1 }, Step::Apply { wave: 0 }]);
        let plan = run(&[sheet], &[(1, 1)]);
        assert_eq!(plan.steps, vec![Step::Early { problem: Uuid::from_u128(2), waiting_for: 1 }]);
    }

    #[test]
    fn events_about_no_problem_go_in_stream_order_per_subject() {
        let items = [
            Item { positions: &[], subject: "R1" },
            Item { positions: &[], subject: "R2" },
            Item { positions: &[], subject: "R1" },
        ];
        let plan = plan(&items, HashMap::new());
        assert_eq!(plan.steps, vec![Step::Apply { wave: 0 }, Step::Apply { wave: 0 }, Step::Apply { wave: 1 }]);
    }
}
