// The compile server's door (sccache-style): k2-clang and k2 build send clang's objects to a
// background k2 process that keeps the optimizer loaded and Z3 initialised (src/server/main.ts);
// any failure there falls back to optimizing in the client's own process.
export { connectServer, closeConnection, optimizeOnServer, serverStatus, stopServer, serverWanted, placeFor, startServer, type Connection, type ServerAnswer, type ServerHooks, type ServerJob } from './client.js';
export { serverPlace, privateDir, type ServerPlace } from './paths.js';
export { PROTOCOL, type ServerStatus } from './protocol.js';
