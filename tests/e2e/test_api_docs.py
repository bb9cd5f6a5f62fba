"""The interactive API docs at /api/v1/docs render every operation with nothing but loopback:
Swagger UI comes from the swagger-ui-bundle package and is served by xiaoche itself."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.offline import loopback_only


def test_the_api_docs_render_the_operations_without_internet(site, tab, artifacts):
    docs = tab(width=1280, height=900)
    page = docs.page
    attempted = loopback_only(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(site.url + "/api/v1/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    spec = site.app.test_client().get("/api/v1/openapi.json").get_json()
    expected = sum(1 for item in spec["paths"].values() for method in item
                   if method in ("get", "post", "put", "patch", "delete"))
    expect(operations).to_have_count(expected)
    live = page.locator(".opblock", has=page.locator('[data-path="/api/v1/routes/{route_id}/live"]'))
    expect(live).to_have_count(1)
    live.locator(".opblock-summary").click()  # opens: the parameters are drawn from the schema
    expect(live.locator(".parameters-container")).to_contain_text("route_id")
    page.screenshot(path=str(artifacts / "api-docs-desktop.png"), full_page=False)

    assert attempted == []
    assert any(u.endswith("/api/v1/docs/assets/swagger-ui-bundle.js") for u in requested)
    assert all(u.startswith(site.url) for u in requested)
    assert docs.errors == []
