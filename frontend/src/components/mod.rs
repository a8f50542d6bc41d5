//! The widgets, one per file. Pages (in `pages/`) compose them; a widget never imports a page,
//! and widgets use each other through their own files, not through this list.

mod attempt_chart;
mod attempt_outputs;
mod badge;
mod banner;
mod batch;
mod batch_form;
mod connection;
mod fault_panel;
mod field_error;
mod header;
mod history;
mod lineage;
mod logs;
mod progress;
mod response;
mod submit_form;
mod timeline;
mod verdict;

pub use badge::state_badge;
pub use banner::emulator_banner;
pub use batch::{batch_items, batch_list, batch_progress};
pub use batch_form::{batch_form, submit_batch_form};
pub use connection::{connection_indicator, connection_notice};
pub use fault_panel::FaultPanel;
pub use header::app_header;
pub use history::HistoryPanel;
pub use lineage::lineage;
pub use logs::LogPanel;
pub use progress::RunProgress;
pub use response::ResponsePanel;
pub use submit_form::SubmitForm;
pub use verdict::verdict_line;
