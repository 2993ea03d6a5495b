//! Opt-in retries: transport failures, 502 and 504.

use super::*;

fn refused_once() -> Mock {
    Mock::new(|n, _| match n {
        0 => Err(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused))),
        _ => reply(200, &[], "ok"),
    })
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_only_when_opted_in() {
    let mock = refused_once();
    let err = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(mock.arrivals().len(), 1);

    let mock = refused_once();
    let policy = BackoffPolicy::new().retry_transport_errors(true);
    let stats = policy.stats();
    let response = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 2);
    assert_eq!(stats.other_retries(), 1);

    let mock = refused_once();
    let mut marked = get();
    marked.extensions_mut().insert(RetrySafe);
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(marked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_never_retried() {
    let mock = Mock::new(|_, _| Err("invalid certificate".into()));
    let policy = BackoffPolicy::new().retry_transport_errors(true);
    let err = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid certificate");
    assert_eq!(mock.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn gateway_errors_are_retried_only_when_opted_in() {
    let script = |n, _| match n {
        0 => reply(502, &[], ""),
        1 => reply(504, &[], ""),
        _ => reply(200, &[], "ok"),
    };
    let mock = Mock::new(script);
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(mock.arrivals().len(), 1);

    let mock = Mock::new(script);
    let policy = BackoffPolicy::new().retry_gateway_errors(true);
    let response = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 3);

    let mock = Mock::new(script);
    let marked = Request::post("http://api.test/analytics/query")
        .extension(RetrySafe)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(marked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 3);
}

#[cfg(feature = "hyper")]
#[tokio::test]
async fn hyper_connection_closed_before_response_is_a_transport_error() {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Read the request, then hang up without answering.
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let err = sender.send_request(get()).await.unwrap_err();
    server.await.unwrap();
    assert!(is_transport_error(&err), "{err:?}");
    let boxed: BoxError = Box::new(err);
    assert!(is_transport_error(boxed.as_ref()));
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_retried_only_when_opted_in() {
    let slow_once = || {
        Mock::new(|n, _| match n {
            0 => Err(Box::new(tower::timeout::error::Elapsed::new())),
            _ => reply(200, &[], "ok"),
        })
    };
    let mock = slow_once();
    let err = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
    assert_eq!(mock.arrivals().len(), 1);

    let mock = slow_once();
    let mut marked = get();
    marked.extensions_mut().insert(RetrySafe);
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let response = Backoff::new(mock.clone(), policy)
        .oneshot(marked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 2);
    assert_eq!(stats.other_retries(), 1);
}
