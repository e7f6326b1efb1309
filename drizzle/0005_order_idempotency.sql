ALTER TABLE `orders` ADD `idempotency_key_hash` char(64);--> statement-breakpoint
ALTER TABLE `orders` ADD `request_fingerprint` char(64);