//! Reports: every table of the contract from the stored facts. [`daily`] builds the seven
//! tables of 5.2 from a month of facts, [`breakdowns`] the dimension and per-member tables of 5.5,
//! [`months`] keeps each month's rows with a fingerprint so that unchanged months are reused,
//! [`adoption`] folds every month's per-member rows, [`export`] writes the API-shaped pages and
//! [`dashboard`] the page.

pub mod adoption;
pub mod breakdowns;
pub mod daily;
pub mod dashboard;
pub mod export;
pub mod months;
