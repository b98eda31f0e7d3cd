//! Randomized fault schedules, seeded (DESIGN §8: "Seeds are fixed in CI and swept in longer
//! runs").

mod adversarial;
mod fault_schedule;
