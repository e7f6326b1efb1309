// The proxy lives with the chaos harness, which puts one in front of MariaDB; tests use it too.
export { createTcpProxy, type TcpProxy } from "../../src/chaos/tcp_proxy";
