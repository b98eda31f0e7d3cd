//! Reading a whole listing through `ListVolumes`' pages: the one loop every client (the CLI,
//! the chaos collector, the tests) uses, so a change to paging is made once.

use crate::pb;
use crate::pb::admin_service_client::AdminServiceClient;

/// The largest page a listing asks for.
pub const PAGE_SIZE: usize = 1000;

/// A listing gives up after this many pages (ten million volumes at [`PAGE_SIZE`]) instead of
/// following a server that hands out tokens forever.
pub const MAX_PAGES: usize = 10_000;

/// Every volume `filter` selects (its category, owner and prefix; its page fields are ignored),
/// in the server's order, at most `limit` of them (0: all).
pub async fn list_volumes<T>(
    admin: &mut AdminServiceClient<T>,
    filter: pb::ListVolumesRequest,
    limit: usize,
) -> Result<Vec<pb::Volume>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let mut all = Vec::new();
    let mut page_token = String::new();
    for _ in 0..MAX_PAGES {
        let want = if limit == 0 {
            PAGE_SIZE
        } else {
            (limit - all.len()).min(PAGE_SIZE)
        };
        let page = admin
            .list_volumes(pb::ListVolumesRequest {
                page_size: want as u32,
                page_token,
                ..filter.clone()
            })
            .await?
            .into_inner();
        all.extend(page.volumes);
        page_token = page.next_page_token;
        if page_token.is_empty() || (limit != 0 && all.len() >= limit) {
            return Ok(all);
        }
    }
    Err(tonic::Status::out_of_range(format!(
        "ListVolumes did not end within {MAX_PAGES} pages"
    )))
}
