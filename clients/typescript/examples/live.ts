/** The README's live-updates snippet, type-checked with the client by `make client-check`. */
import { createRoombookClient } from "../src/index";

const baseUrl = "https://api.example.com";
const api = createRoombookClient({ baseUrl, onSessionEnded: () => location.assign("/login") });

/** The JSON of a `booking` event: what changed, never whose it is or what it is called. */
export interface BookingEvent {
  id: string;
  type: string; // booking.created, .updated, .cancelled, .approved, .rejected; blackout.added, .removed
  booking_id: string;
  room_id: string;
  kind: "booking" | "blackout";
  status: "pending" | "confirmed" | "rejected" | "cancelled";
  starts_at: string;
  ends_at: string;
}

let lastEventId: string | undefined;

/** Follow booking changes for as long as the session lasts; `onReset` reloads what is shown. */
export async function follow(onChange: (event: BookingEvent) => void, onReset: () => void): Promise<void> {
  const { data } = await api.POST("/api/v1/bookings/events/ticket"); // Bearer; a 401 refreshes once
  if (!data) return; // the session is over (onSessionEnded has run)
  const query = new URLSearchParams({ ticket: data.ticket });
  if (lastEventId) query.set("last_event_id", lastEventId); // resume after the last event seen
  const source = new EventSource(`${baseUrl}/api/v1/bookings/events?${query}`);
  source.addEventListener("booking", (event) => {
    const message = event as MessageEvent<string>;
    lastEventId = message.lastEventId;
    onChange(JSON.parse(message.data) as BookingEvent);
  });
  source.addEventListener("reset", onReset); // missed events could not be replayed
  source.onerror = () => {
    // A ticket opens one stream: EventSource's own retry would be refused, so ask for a new one.
    source.close();
    setTimeout(() => void follow(onChange, onReset), 1000);
  };
}
