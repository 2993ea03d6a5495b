//! keel-paginate (work in progress).
