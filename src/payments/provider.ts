/**
 * The port to the payment provider that the reconcilers use to ask what really happened to an
 * order's payment (the stuck-PENDING job), independent of whether its callback arrived.
 */
export interface PaymentProvider {
  paymentStatus(orderId: string): Promise<ProviderPayment>;
}

export type ProviderPayment =
  | { status: "none" }
  | { status: "succeeded" | "failed"; eventId: string; amountCents: number; currency: string };
