/** The README's three lines for the SPA, type-checked with the client by `make client-check`. */
import { createRoombookClient } from "../src/index";

const api = createRoombookClient({ baseUrl: "https://api.example.com", onSessionEnded: () => location.assign("/login") });
await api.login("ada@example.com", "correct horse battery staple"); // access token kept in memory
const { data: sessions } = await api.GET("/api/v1/auth/sessions"); // a 401 refreshes once, then retries

export const deviceCount = sessions?.length ?? 0;
