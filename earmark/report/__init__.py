"""Reports for people: findings per recording, exports, the HTML report, signed bundles."""
