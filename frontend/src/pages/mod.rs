//! The routed pages, one per [`Route`](crate::router::Route) variant; `app.rs` picks which one
//! shows. A page composes widgets from `components/` and holds the page-wide state they share.

mod batch;
mod batches;
mod compare;
mod edit;
mod history;
mod home;
mod not_found;
mod run;

pub use batch::batch_page;
pub use batches::BatchesPage;
pub use compare::ComparePage;
pub use edit::EditPage;
pub use history::history_page;
pub use home::HomePage;
pub use not_found::{NO_SUCH_PAGE, not_found};
pub use run::run_page;
