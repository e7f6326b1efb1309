-- Every value the API accepts fits where it is stored (src/limits.ts): an admin reason of 255
-- characters in orders.status_reason, the composed entity ids (<saleId>/<sku> is 129 at the
-- limits) in audit_log and reconcile_findings.
ALTER TABLE `audit_log` MODIFY COLUMN `entity_id` varchar(255) NOT NULL;--> statement-breakpoint
ALTER TABLE `orders` MODIFY COLUMN `status_reason` varchar(255);--> statement-breakpoint
ALTER TABLE `reconcile_findings` MODIFY COLUMN `entity_id` varchar(255) NOT NULL;