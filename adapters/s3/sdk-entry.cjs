// The entry scripts/bundle.mjs bundles into dist/bundle/aws-sdk.cjs: what adapters/s3/sdk.ts exports.
module.exports = { sdk: require("@aws-sdk/client-s3"), signing: require("@smithy/signature-v4") };
