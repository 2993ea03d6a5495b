//! Access tokens: a single-flight cache, the client-credentials grant, bearer injection and
//! refresh-on-401 replay.
