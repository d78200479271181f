//! The ADS gRPC service, with its responses framed here rather than by
//! tonic's generated server.
//!
//! tonic encodes a stream's messages into one buffer that lives as long as
//! the stream and keeps the capacity of the largest message it ever held.
//! An xDS stream's largest message is a whole state-of-the-world response
//! (about a megabyte for 1,000 services), so every connected proxy kept a
//! megabyte or two of empty buffer. Here each response is encoded into a
//! buffer of its own, freed once HTTP/2 has written it. Requests are still
//! decoded by tonic ([`Streaming`]); the service plugs into
//! `tonic::transport::Server` like a generated one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tonic_prost::ProstCodec;
use weft_envoy_api::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use super::server::{AdsServer, Caller};
use super::{DeltaConnection, SotwConnection};

const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const STATE_OF_THE_WORLD: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The largest request accepted (tonic's default).
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// gRPC's message header: a compression flag and a 4-byte length.
const HEADER: usize = 5;

/// [`AdsServer`] as a gRPC service: `Server::builder().add_service(..)`.
#[derive(Clone, Debug)]
pub struct AdsService {
    server: AdsServer,
}

impl AdsService {
    pub fn new(server: AdsServer) -> Self {
        Self { server }
    }

    fn stream<Req, Resp>(
        &self,
        request: http::Request<Body>,
        spawn: impl FnOnce(&AdsServer, Streaming<Req>, Caller) -> mpsc::Receiver<Result<Resp, Status>>,
    ) -> http::Response<Body>
    where
        Req: Message + Default + Send + 'static,
        Resp: Message + Default + Send + 'static,
    {
        if let Some(encoding) = request.headers().get("grpc-encoding")
            && encoding != "identity"
        {
            return Status::unimplemented(format!(
                "compressed requests ({encoding:?}) are not supported"
            ))
            .into_http();
        }
        let caller = Caller {
            address: request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr),
            bearer: request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_string()),
        };
        let decoder = ProstCodec::<Resp, Req>::default().decoder();
        let inbound = Streaming::new_request(decoder, request.into_body(), None, Some(MAX_REQUEST));
        let outbound = spawn(&self.server, inbound, caller);
        let mut response = http::Response::new(Body::new(StreamBody::new(frames(outbound))));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        response
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = match request.uri().path() {
            STATE_OF_THE_WORLD => self.stream::<DiscoveryRequest, DiscoveryResponse>(
                request,
                AdsServer::spawn::<SotwConnection>,
            ),
            DELTA => self.stream::<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
                request,
                AdsServer::spawn::<DeltaConnection>,
            ),
            path => Status::unimplemented(format!("{path}: no such method")).into_http(),
        };
        Box::pin(async move { Ok(response) })
    }
}

/// The response body: one data frame per message, each in a buffer of its
/// own; then the status in the trailers (OK when the stream ends, or the
/// error that ended it).
fn frames<M: Message + Send + 'static>(
    outbound: mpsc::Receiver<Result<M, Status>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    futures::stream::unfold(Some(outbound), |state| async move {
        let mut outbound = state?;
        let frame = match outbound.recv().await {
            Some(Ok(message)) => match data_frame(&message) {
                Ok(frame) => return Some((Ok(frame), Some(outbound))),
                Err(status) => trailers(&status),
            },
            Some(Err(status)) => trailers(&status),
            None => trailers(&Status::ok("")),
        };
        Some((Ok(frame), None))
    })
}

/// One length-prefixed, uncompressed gRPC message.
fn data_frame(message: &impl Message) -> Result<Frame<Bytes>, Status> {
    let len = message.encoded_len();
    let prefix = u32::try_from(len).map_err(|_| {
        Status::resource_exhausted(format!(
            "a response of {len} bytes exceeds gRPC's 4 GiB message limit"
        ))
    })?;
    let mut buf = BytesMut::with_capacity(HEADER + len);
    buf.put_u8(0);
    buf.put_u32(prefix);
    message
        .encode(&mut buf)
        .map_err(|err| Status::internal(format!("encoding a response: {err}")))?;
    Ok(Frame::data(buf.freeze()))
}

fn trailers(status: &Status) -> Frame<Bytes> {
    let mut headers = HeaderMap::new();
    if let Err(unrepresentable) = status.add_header(&mut headers) {
        // Only a message that is not a valid header value gets here.
        let _ = Status::new(unrepresentable.code(), "").add_header(&mut headers);
    }
    Frame::trailers(headers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn a_data_frame_is_the_message_behind_a_five_byte_header() {
        let message = DiscoveryResponse {
            version_info: "v1".into(),
            ..Default::default()
        };
        let frame = data_frame(&message).unwrap().into_data().unwrap();
        let len = message.encoded_len();
        assert_eq!(frame[0], 0, "not compressed");
        assert_eq!(frame[1..HEADER], (len as u32).to_be_bytes());
        assert_eq!(
            DiscoveryResponse::decode(&frame[HEADER..]).unwrap(),
            message
        );
    }

    #[tokio::test]
    async fn messages_then_ok_trailers_when_the_stream_ends() {
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(DiscoveryResponse::default())).await.unwrap();
        drop(tx);
        let got: Vec<_> = frames(rx).map(Result::unwrap).collect().await;
        assert_eq!(got.len(), 2);
        assert!(got[0].is_data());
        let trailers = got[1].trailers_ref().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_its_status() {
        let (tx, rx) = mpsc::channel(2);
        tx.send(Err(Status::invalid_argument("no node")))
            .await
            .unwrap();
        tx.send(Ok(DiscoveryResponse::default())).await.unwrap();
        let got: Vec<_> = frames(rx).map(Result::unwrap).collect().await;
        assert_eq!(got.len(), 1, "nothing after the error");
        let trailers = got[0].trailers_ref().unwrap();
        assert_eq!(trailers["grpc-status"], "3");
        assert_eq!(trailers["grpc-message"], "no%20node", "percent-encoded");
    }
}
