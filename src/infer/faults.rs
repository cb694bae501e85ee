//! `bedside run --model-faults stall@20+3000,fail@50+5`: a model that stalls
//! or fails at given runs, to rehearse what the screen does when inference
//! stops (AI UNAVAILABLE, then recovery) on a bench or in the tests.
//!
//! `stall@N+MS`: the N-th run (from 0) takes MS milliseconds longer.
//! `fail@N+K`: runs N to N+K-1 return an error. The real model still runs
//! for every other call.

use std::str::FromStr;
use std::time::Duration;

use super::{InferError, Model};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFault {
    Stall { run: u64, millis: u64 },
    Fail { first: u64, runs: u64 },
}

/// The faults of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFaultPlan {
    pub faults: Vec<ModelFault>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}': expected stall@RUN+MILLISECONDS or fail@RUN+RUNS (e.g. stall@20+3000)")]
pub struct BadModelFault(String);

impl FromStr for ModelFaultPlan {
    type Err = BadModelFault;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let faults = s
            .split(',')
            .map(str::trim)
            .map(|part| {
                let bad = || BadModelFault(part.to_string());
                let (kind, at) = part.split_once('@').ok_or_else(bad)?;
                let (a, b) = at.split_once('+').ok_or_else(bad)?;
                let (a, b): (u64, u64) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                match kind {
                    "stall" if b <= 3_600_000 => Ok(ModelFault::Stall { run: a, millis: b }),
                    "fail" if b > 0 && a.checked_add(b).is_some() => {
                        Ok(ModelFault::Fail { first: a, runs: b })
                    }
                    _ => Err(bad()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelFaultPlan { faults })
    }
}

/// A model with rehearsed faults around a real one.
pub struct FaultyModel {
    inner: Box<dyn Model>,
    plan: ModelFaultPlan,
    runs: u64,
}

impl FaultyModel {
    pub fn new(inner: Box<dyn Model>, plan: ModelFaultPlan) -> FaultyModel {
        FaultyModel {
            inner,
            plan,
            runs: 0,
        }
    }
}

impl Model for FaultyModel {
    fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError> {
        self.run_gated(input).map(|(out, _)| out)
    }

    fn run_gated(&mut self, input: &[i8]) -> Result<(&[f32], Option<f32>), InferError> {
        let n = self.runs;
        self.runs += 1;
        for f in &self.plan.faults {
            match *f {
                ModelFault::Stall { run, millis } if run == n => {
                    tracing::warn!("rehearsal: model run {n} stalls for {millis} ms");
                    std::thread::sleep(Duration::from_millis(millis));
                }
                ModelFault::Fail { first, runs } if (first..first + runs).contains(&n) => {
                    return Err(InferError::Run {
                        model: "rehearsal".into(),
                        reason: format!("rehearsed failure of run {n}"),
                    });
                }
                _ => {}
            }
        }
        self.inner.run_gated(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<f32>);
    impl Model for Echo {
        fn run(&mut self, input: &[i8]) -> Result<&[f32], InferError> {
            self.0 = input.iter().map(|&v| f32::from(v)).collect();
            Ok(&self.0)
        }
    }

    #[test]
    fn parses_and_rejects() {
        let p: ModelFaultPlan = "stall@20+3000, fail@5+2".parse().unwrap();
        assert_eq!(
            p.faults,
            vec![
                ModelFault::Stall {
                    run: 20,
                    millis: 3000
                },
                ModelFault::Fail { first: 5, runs: 2 }
            ]
        );
        for bad in [
            "",
            "stall",
            "stall@x+1",
            "fail@3+0",
            "hang@1+1",
            "stall@1+99999999",
        ] {
            assert!(bad.parse::<ModelFaultPlan>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fails_and_stalls_the_given_runs_only() {
        let plan = "fail@1+2,stall@3+30".parse().unwrap();
        let mut m = FaultyModel::new(Box::new(Echo(Vec::new())), plan);
        assert_eq!(m.run(&[1]).unwrap(), &[1.0]);
        assert!(m.run(&[2]).is_err());
        assert!(m.run(&[3]).is_err());
        let t = std::time::Instant::now();
        assert_eq!(m.run(&[4]).unwrap(), &[4.0]);
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(m.run(&[5]).unwrap(), &[5.0]);
    }
}
