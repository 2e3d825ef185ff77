/* A WebSocket client for the integration tests (placeholder). */
#pragma once
