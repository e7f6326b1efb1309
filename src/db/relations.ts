import { relations } from "drizzle-orm";
import { orderItems, orderStatusHistory, orders, saleSkus, sales } from "./schema";

export const salesRelations = relations(sales, ({ many }) => ({ skus: many(saleSkus) }));
export const saleSkusRelations = relations(saleSkus, ({ one }) => ({
  sale: one(sales, { fields: [saleSkus.saleId], references: [sales.id] }),
}));
export const ordersRelations = relations(orders, ({ many, one }) => ({
  sale: one(sales, { fields: [orders.saleId], references: [sales.id] }),
  items: many(orderItems),
  history: many(orderStatusHistory),
}));
export const orderItemsRelations = relations(orderItems, ({ one }) => ({
  order: one(orders, { fields: [orderItems.orderId], references: [orders.id] }),
}));
export const orderStatusHistoryRelations = relations(orderStatusHistory, ({ one }) => ({
  order: one(orders, { fields: [orderStatusHistory.orderId], references: [orders.id] }),
}));
