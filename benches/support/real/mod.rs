//! The scale bench on the real control plane: the plane and the chart (`plane`), the
//! server's record of the operator's requests (`audit`), and what the run cost (`probe`).

pub mod audit;
pub mod plane;
pub mod probe;
