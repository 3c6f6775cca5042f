/** IP-Adapter: image prompts through decoupled cross-attention (base and plus; several at once). */
export { IPAdapter, readAdapterTensors, type IPAdapterProjectionSpec, type ImageProjectionSpec, type PlusImageProjectionSpec } from './ip-adapter-file.js';
export { imageProjection, ipAdapterPlusImageProjection, projectImageEmbeds } from './image-projection.js';
export { crossAttentionOrder, ipAdapterFeeds, ipAdapterVariant, type IPAdapterTokens, type IPRow } from './decoupled-attention.js';
export { guidanceRows, ipAdapterSetup, ipAdapterConditioning, ipAdapterTokens, modelImageEncoder, openImageEncoder, prepareIPAdapters, type IPAdapterConditioning, type IPAdapterInput, type PreparedIPAdapter } from './prepare.js';
