//! keel-genesys (work in progress).
