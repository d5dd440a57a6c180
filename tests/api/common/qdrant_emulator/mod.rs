//! A Qdrant gRPC endpoint served in-process for the store tests, where no Qdrant server can be
//! installed: qdrant-client's own generated tonic service traits (`Points`, `Collections`,
//! `Qdrant`), with Qdrant's own engine behind them (Qdrant Edge, one shard per collection).
//!
//! Only the calls `QdrantStore` makes are emulated; every other call answers `unimplemented`,
//! so a new call in the store fails loudly here instead of passing untested. It proves the
//! client side and the wire format (real client, real HTTP/2 + protobuf, the API key header);
//! the semantics of a real server (cluster, consistency, its own parsing) are proven only by a
//! run against one (`QDRANT_URL`).
//!
//! Test-only, so it lives with the tests: the lore binary carries no emulator.

mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use qdrant_client::qdrant::{self as grpc, vectors_config};
use qdrant_edge::{
    Distance, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, Modifier,
    NamedQuery, PayloadSchemaType, PointInsertOperations, PointOperations, QueryBatchRequest,
    QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SearchParams, UpdateOperation,
};
use tonic::{Request, Response, Status};

/// A running emulated Qdrant: `url` is its gRPC address.
pub struct QdrantEmulator {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl QdrantEmulator {
    /// Serves on a free local port; with `api_key`, calls without that `api-key` header are
    /// refused as a real server refuses them.
    pub async fn start(api_key: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(Engine {
            root: dir.path().to_path_buf(),
            shards: Mutex::new(HashMap::new()),
        });
        let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
            .expect("bind");
        let url = format!("http://{}", incoming.local_addr().expect("address"));
        let key = api_key.map(str::to_owned);
        let check = move |request: Request<()>| -> Result<Request<()>, Status> {
            match &key {
                Some(key) => {
                    let sent = request
                        .metadata()
                        .get("api-key")
                        .and_then(|v| v.to_str().ok());
                    if sent == Some(key.as_str()) {
                        Ok(request)
                    } else {
                        Err(Status::unauthenticated("Invalid api-key"))
                    }
                }
                None => Ok(request),
            }
        };
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(QdrantServer::with_interceptor(Health, check.clone()))
            .add_service(CollectionsServer::with_interceptor(
                CollectionsService(Arc::clone(&engine)),
                check.clone(),
            ))
            .add_service(PointsServer::with_interceptor(PointsService(engine), check))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Self {
            url,
            shutdown: Some(shutdown),
            _dir: dir,
        }
    }
}

impl Drop for QdrantEmulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The Qdrant a test stores on: a real server when `QDRANT_URL` is set (`QDRANT_API_KEY` if it
/// needs one), else the in-process emulator; under a collection prefix of the test's own.
pub struct QdrantTarget {
    pub url: String,
    pub key: Option<String>,
    pub prefix: String,
    _emulator: Option<QdrantEmulator>,
}

impl QdrantTarget {
    /// `label` starts the collection prefix, so a real server shows which test left what.
    pub async fn start(label: &str) -> Self {
        let prefix = format!("lore_{label}_{}_", uuid::Uuid::new_v4().simple());
        match std::env::var("QDRANT_URL") {
            Ok(url) => Self {
                url,
                key: std::env::var("QDRANT_API_KEY").ok(),
                prefix,
                _emulator: None,
            },
            Err(_) => {
                let emulator = QdrantEmulator::start(None).await;
                Self {
                    url: emulator.url.clone(),
                    key: None,
                    prefix,
                    _emulator: Some(emulator),
                }
            }
        }
    }

    /// Points `config`'s storage at this Qdrant.
    pub fn configure(&self, config: &mut lore::config::Config) {
        config.storage.backend = lore::config::StorageBackend::Qdrant;
        config.storage.qdrant.url = self.url.clone();
        config.storage.qdrant.api_key = self.key.clone().map(lore::config::Secret::new);
        config.storage.qdrant.collection_prefix = self.prefix.clone();
    }
}

/// Collections are Edge shards under one temporary directory.
struct Engine {
    root: PathBuf,
    shards: Mutex<HashMap<String, Arc<EdgeShard>>>,
}

impl Engine {
    fn shard(&self, collection: &str) -> Result<Arc<EdgeShard>, Status> {
        self.shards
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .get(collection)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("Collection `{collection}` doesn't exist!")))
    }
}

fn invalid(err: anyhow::Error) -> Status {
    Status::invalid_argument(format!("{err:#}"))
}

fn engine_error(err: impl std::fmt::Display) -> Status {
    Status::internal(err.to_string())
}

/// Runs Edge (synchronous, disk I/O) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(engine_error)?
}

fn updated() -> Response<grpc::PointsOperationResponse> {
    Response::new(grpc::PointsOperationResponse {
        result: Some(grpc::UpdateResult {
            operation_id: Some(0),
            status: grpc::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    })
}

fn collection_done() -> Response<grpc::CollectionOperationResponse> {
    Response::new(grpc::CollectionOperationResponse {
        result: true,
        time: 0.0,
    })
}

struct Health;

#[tonic::async_trait]
impl Qdrant for Health {
    async fn health_check(
        &self,
        _: Request<grpc::HealthCheckRequest>,
    ) -> Result<Response<grpc::HealthCheckReply>, Status> {
        Ok(Response::new(grpc::HealthCheckReply {
            title: "qdrant-edge emulator (lore tests)".into(),
            version: "1.20.0".into(),
            commit: None,
        }))
    }
}

/// Writes an impl of a generated service trait: the emulated calls as given, and every other
/// call of the trait answering `unimplemented`.
macro_rules! service {
    (impl $trait:ident for $type:ty {
        $($emulated:tt)*
    } unimplemented { $($name:ident($request:ident) -> $response:ident;)* }) => {
        #[tonic::async_trait]
        impl $trait for $type {
            $($emulated)*
            $(
                async fn $name(
                    &self,
                    _: Request<grpc::$request>,
                ) -> Result<Response<grpc::$response>, Status> {
                    Err(Status::unimplemented(concat!(
                        stringify!($name),
                        " is not emulated: QdrantStore does not call it"
                    )))
                }
            )*
        }
    };
}

struct CollectionsService(Arc<Engine>);

service! {
    impl Collections for CollectionsService {
        async fn list(
            &self,
            _request: Request<grpc::ListCollectionsRequest>,
        ) -> Result<Response<grpc::ListCollectionsResponse>, Status> {
            let collections = self
                .0
                .shards
                .lock()
                .map_err(|_| Status::internal("poisoned"))?
                .keys()
                .map(|name| grpc::CollectionDescription { name: name.clone() })
                .collect();
            Ok(Response::new(grpc::ListCollectionsResponse {
                collections,
                time: 0.0,
            }))
        }

        async fn collection_exists(
            &self,
            request: Request<grpc::CollectionExistsRequest>,
        ) -> Result<Response<grpc::CollectionExistsResponse>, Status> {
            let name = request.into_inner().collection_name;
            let exists = self.0.shard(&name).is_ok();
            Ok(Response::new(grpc::CollectionExistsResponse {
                result: Some(grpc::CollectionExists { exists }),
                time: 0.0,
            }))
        }

        async fn create(
            &self,
            request: Request<grpc::CreateCollection>,
        ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
            let request = request.into_inner();
            let name = request.collection_name.clone();
            if self.0.shard(&name).is_ok() {
                return Err(Status::already_exists(format!("Collection `{name}` already exists!")));
            }
            let mut config = EdgeConfigBuilder::new();
            match request.vectors_config.and_then(|v| v.config) {
                Some(vectors_config::Config::ParamsMap(map)) => {
                    for (vector, params) in map.map {
                        let distance = match grpc::Distance::try_from(params.distance) {
                            Ok(grpc::Distance::Cosine) => Distance::Cosine,
                            Ok(grpc::Distance::Dot) => Distance::Dot,
                            Ok(grpc::Distance::Euclid) => Distance::Euclid,
                            _ => return Err(Status::invalid_argument("distance not emulated")),
                        };
                        config = config.vector(
                            vector,
                            EdgeVectorParams::builder(params.size as usize, distance).build(),
                        );
                    }
                }
                _ => return Err(Status::invalid_argument("only named vectors are emulated")),
            }
            for (vector, params) in request.sparse_vectors_config.map(|s| s.map).unwrap_or_default() {
                let idf = params.modifier == Some(grpc::Modifier::Idf as i32);
                config = config.sparse_vector(
                    vector,
                    EdgeSparseVectorParams {
                        modifier: idf.then_some(Modifier::Idf),
                        ..Default::default()
                    },
                );
            }
            let config = config.build();
            let path = self.0.root.join(&name);
            let shard = blocking(move || {
                std::fs::create_dir_all(&path).map_err(engine_error)?;
                EdgeShard::new(&path, config).map_err(engine_error)
            })
            .await?;
            self.0
                .shards
                .lock()
                .map_err(|_| Status::internal("poisoned"))?
                .insert(name, Arc::new(shard));
            Ok(collection_done())
        }

        async fn delete(
            &self,
            request: Request<grpc::DeleteCollection>,
        ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
            let name = request.into_inner().collection_name;
            let shard = self
                .0
                .shards
                .lock()
                .map_err(|_| Status::internal("poisoned"))?
                .remove(&name);
            let path = self.0.root.join(&name);
            blocking(move || {
                drop(shard);
                if path.exists() {
                    std::fs::remove_dir_all(&path).map_err(engine_error)?;
                }
                Ok(())
            })
            .await?;
            Ok(collection_done())
        }

        async fn get(
            &self,
            request: Request<grpc::GetCollectionInfoRequest>,
        ) -> Result<Response<grpc::GetCollectionInfoResponse>, Status> {
            let shard = self.0.shard(&request.into_inner().collection_name)?;
            let map = shard
                .config()
                .vectors
                .iter()
                .map(|(name, params)| {
                    let params = grpc::VectorParams {
                        size: params.size as u64,
                        distance: grpc::Distance::Cosine as i32,
                        ..Default::default()
                    };
                    (name.clone(), params)
                })
                .collect();
            let params = grpc::CollectionParams {
                vectors_config: Some(grpc::VectorsConfig {
                    config: Some(vectors_config::Config::ParamsMap(grpc::VectorParamsMap { map })),
                }),
                ..Default::default()
            };
            let info = blocking(move || shard.info().map_err(engine_error)).await?;
            let payload_schema = info
                .payload_schema
                .into_iter()
                .map(|(field, index)| {
                    let data_type = match index.data_type {
                        PayloadSchemaType::Keyword => grpc::PayloadSchemaType::Keyword,
                        PayloadSchemaType::Integer => grpc::PayloadSchemaType::Integer,
                        PayloadSchemaType::Float => grpc::PayloadSchemaType::Float,
                        PayloadSchemaType::Datetime => grpc::PayloadSchemaType::Datetime,
                        _ => grpc::PayloadSchemaType::UnknownType,
                    };
                    let info = grpc::PayloadSchemaInfo {
                        data_type: data_type as i32,
                        params: None,
                        points: Some(index.points as u64),
                    };
                    (field.to_string(), info)
                })
                .collect();
            Ok(Response::new(grpc::GetCollectionInfoResponse {
                result: Some(grpc::CollectionInfo {
                    status: grpc::CollectionStatus::Green as i32,
                    config: Some(grpc::CollectionConfig {
                        params: Some(params),
                        ..Default::default()
                    }),
                    payload_schema,
                    ..Default::default()
                }),
                time: 0.0,
            }))
        }
    }
    unimplemented {
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

struct PointsService(Arc<Engine>);

fn update(shard: &EdgeShard, operation: UpdateOperation) -> Result<(), Status> {
    shard.update(operation).map_err(engine_error)?;
    shard.flush().map_err(engine_error)
}

service! {
    impl Points for PointsService {
        async fn upsert(
            &self,
            request: Request<grpc::UpsertPoints>,
        ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let points = request
                .points
                .into_iter()
                .map(wire::point)
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(invalid)?;
            let points = PointInsertOperations::PointsList(points);
            let operation = match request.update_filter {
                // Edge's own conditional upsert: the server's `update_filter` semantics.
                Some(condition) => PointOperations::UpsertPointsConditional(
                    qdrant_edge::ConditionalInsertOperation {
                        points_op: points,
                        condition: wire::filter(&condition).map_err(invalid)?,
                        update_mode: None,
                    },
                ),
                None => PointOperations::UpsertPoints(points),
            };
            blocking(move || update(&shard, UpdateOperation::PointOperation(operation))).await?;
            Ok(updated())
        }

        async fn delete(
            &self,
            request: Request<grpc::DeletePoints>,
        ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let operation = match request.points.and_then(|p| p.points_selector_one_of) {
                Some(grpc::points_selector::PointsSelectorOneOf::Filter(filter)) => {
                    PointOperations::DeletePointsByFilter(wire::filter(&filter).map_err(invalid)?)
                }
                Some(grpc::points_selector::PointsSelectorOneOf::Points(list)) => {
                    PointOperations::DeletePoints {
                        ids: list
                            .ids
                            .iter()
                            .map(wire::point_id)
                            .collect::<anyhow::Result<_>>()
                            .map_err(invalid)?,
                    }
                }
                None => return Err(Status::invalid_argument("no points selected")),
            };
            blocking(move || update(&shard, UpdateOperation::PointOperation(operation))).await?;
            Ok(updated())
        }

        async fn get(
            &self,
            request: Request<grpc::GetPoints>,
        ) -> Result<Response<grpc::GetResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let ids = request
                .ids
                .iter()
                .map(wire::point_id)
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(invalid)?;
            let retrieve = qdrant_edge::RetrieveRequest {
                point_ids: ids,
                with_payload: Some(
                    wire::with_payload(request.with_payload.as_ref()).map_err(invalid)?,
                ),
                with_vector: Some(wire::with_vector(request.with_vectors.as_ref())),
            };
            let records = blocking(move || shard.retrieve(retrieve).map_err(engine_error)).await?;
            let result = records
                .into_iter()
                .map(|r| grpc::RetrievedPoint {
                    id: Some(wire::grpc_id(&r.id)),
                    payload: wire::grpc_payload(r.payload),
                    vectors: wire::grpc_vectors(r.vector),
                    shard_key: None,
                    order_value: None,
                })
                .collect();
            Ok(Response::new(grpc::GetResponse {
                result,
                time: 0.0,
                usage: None,
            }))
        }

        async fn create_field_index(
            &self,
            request: Request<grpc::CreateFieldIndexCollection>,
        ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let schema = match request.field_type.map(grpc::FieldType::try_from) {
                Some(Ok(grpc::FieldType::Keyword)) => PayloadSchemaType::Keyword,
                Some(Ok(grpc::FieldType::Integer)) => PayloadSchemaType::Integer,
                Some(Ok(grpc::FieldType::Float)) => PayloadSchemaType::Float,
                Some(Ok(grpc::FieldType::Datetime)) => PayloadSchemaType::Datetime,
                _ => return Err(Status::invalid_argument("field type not emulated")),
            };
            let field_name = request
                .field_name
                .parse()
                .map_err(|_| Status::invalid_argument("invalid field name"))?;
            let operation = UpdateOperation::FieldIndexOperation(
                qdrant_edge::FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                    field_name,
                    field_schema: Some(schema.into()),
                }),
            );
            blocking(move || update(&shard, operation)).await?;
            Ok(updated())
        }

        async fn scroll(
            &self,
            request: Request<grpc::ScrollPoints>,
        ) -> Result<Response<grpc::ScrollResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let scroll = ScrollRequest {
                offset: request
                    .offset
                    .as_ref()
                    .map(wire::point_id)
                    .transpose()
                    .map_err(invalid)?,
                limit: Some(request.limit.unwrap_or(10) as usize),
                filter: request
                    .filter
                    .as_ref()
                    .map(wire::filter)
                    .transpose()
                    .map_err(invalid)?,
                with_payload: Some(
                    wire::with_payload(request.with_payload.as_ref()).map_err(invalid)?,
                ),
                with_vector: wire::with_vector(request.with_vectors.as_ref()),
                ..ScrollRequest::new()
            };
            let (records, next) =
                blocking(move || shard.scroll(scroll).map_err(engine_error)).await?;
            let result = records
                .into_iter()
                .map(|r| grpc::RetrievedPoint {
                    id: Some(wire::grpc_id(&r.id)),
                    payload: wire::grpc_payload(r.payload),
                    vectors: wire::grpc_vectors(r.vector),
                    shard_key: None,
                    order_value: None,
                })
                .collect();
            Ok(Response::new(grpc::ScrollResponse {
                next_page_offset: next.as_ref().map(wire::grpc_id),
                result,
                time: 0.0,
                usage: None,
            }))
        }

        async fn query_batch(
            &self,
            request: Request<grpc::QueryBatchPoints>,
        ) -> Result<Response<grpc::QueryBatchResponse>, Status> {
            let request = request.into_inner();
            let shard = self.0.shard(&request.collection_name)?;
            let mut queries = Vec::with_capacity(request.query_points.len());
            for query in &request.query_points {
                if !query.prefetch.is_empty() {
                    return Err(Status::invalid_argument("prefetch is not emulated"));
                }
                let limit = query.limit.unwrap_or(10) as usize;
                queries.push(QueryRequest {
                    query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                        query: wire::nearest(query.query.as_ref()).map_err(invalid)?,
                        using: query.using.clone(),
                    }))),
                    filter: query
                        .filter
                        .as_ref()
                        .map(wire::filter)
                        .transpose()
                        .map_err(invalid)?,
                    params: Some(SearchParams {
                        exact: query.params.as_ref().is_some_and(|p| p.exact == Some(true)),
                        ..Default::default()
                    }),
                    with_payload: wire::with_payload(query.with_payload.as_ref())
                        .map_err(invalid)?,
                    with_vector: wire::with_vector(query.with_vectors.as_ref()),
                    ..QueryRequest::new(limit)
                });
            }
            let results = blocking(move || {
                shard
                    .query_batch(QueryBatchRequest { queries })
                    .map_err(engine_error)
            })
            .await?;
            let result = results
                .into_iter()
                .map(|points| grpc::BatchResult {
                    result: points
                        .into_iter()
                        .map(|p| grpc::ScoredPoint {
                            id: Some(wire::grpc_id(&p.id)),
                            payload: wire::grpc_payload(p.payload),
                            score: p.score,
                            version: p.version,
                            vectors: wire::grpc_vectors(p.vector),
                            shard_key: None,
                            order_value: None,
                        })
                        .collect(),
                })
                .collect();
            Ok(Response::new(grpc::QueryBatchResponse {
                result,
                time: 0.0,
                usage: None,
            }))
        }
    }
    unimplemented {
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        count(CountPoints) -> CountResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query(QueryPoints) -> QueryResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}
