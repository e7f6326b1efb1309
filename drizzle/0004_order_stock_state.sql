ALTER TABLE `orders` ADD `stock_state` varchar(12) DEFAULT 'HELD' NOT NULL;--> statement-breakpoint
CREATE INDEX `orders_sale_stock_ix` ON `orders` (`sale_id`,`stock_state`);--> statement-breakpoint
-- Backfill for orders written before the column existed (hand-written, not generated).
UPDATE `orders` SET `stock_state` = 'NEVER_HELD' WHERE `status_reason` = 'OVERSOLD';--> statement-breakpoint
UPDATE `orders` o SET o.`stock_state` = 'RELEASED'
WHERE o.`status` IN ('CANCELLED', 'EXPIRED', 'REFUNDED')
  AND COALESCE(o.`status_reason`, '') <> 'OVERSOLD'
  AND NOT EXISTS (SELECT 1 FROM `order_status_history` h
                  WHERE h.`order_id` = o.`id` AND h.`from_status` = 'SHIPPED' AND h.`to_status` = 'REFUNDED');
