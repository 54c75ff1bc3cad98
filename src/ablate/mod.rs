//! Ablation tables: gathering evaluations and training histories, paired significance tests,
//! the table formats, and the plots of the `ablate` stage kind.

pub mod budget;
pub mod compare;
pub mod gather;
pub mod plot;
pub mod stats;
pub mod table;
