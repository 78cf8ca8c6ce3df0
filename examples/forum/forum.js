/* Collab Hub forum front-end: post a question (anonymously with an e-mail, or signed in) and
 * follow its thread to the accepted answer. Plain fetch() against POST /graphql; anonymous
 * requests name their tenant with the X-Hub-Tenant header. Texts are rendered as text. */
(function () {
  "use strict";
  const root = document.getElementById("forum");
  const hash = new URLSearchParams(location.hash.slice(1));
  const tenant = root.dataset.tenant || hash.get("tenant") || "demo";
  const token = hash.get("token");
  const endpoint = new URL("/graphql", root.dataset.hub || hash.get("hub") || location.href).toString();
  const $ = (id) => document.getElementById(id);
  const THREAD_FIELDS = `id title body status answerCount
    answers { id body accepted byStaff createdAt author { name } }`;
  let current = null;

  async function gql(query, variables) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    else headers["x-hub-tenant"] = tenant;
    const response = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
    const body = await response.json();
    if (body.errors) throw new Error(body.errors[0].message);
    return body.data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function showList() {
    current = null;
    $("thread-view").hidden = true;
    $("list-view").hidden = false;
    const data = await gql(`{ forumThreads(first: 20) { edges { node { id title status answerCount } } } }`);
    const edges = data.forumThreads.edges;
    $("threads").dataset.loaded = "true";
    if (!edges.length) $("threads").replaceChildren(el("li", "empty", "No questions yet: be the first!"));
    else $("threads").replaceChildren(...edges.map(({ node }) => {
      const item = el("li");
      const link = item.appendChild(el("a", "thread-link", node.title));
      link.href = "#";
      link.onclick = (event) => { event.preventDefault(); showThread(node.id); };
      item.appendChild(el("span", "status", node.status));
      item.appendChild(el("span", "count", ` ${node.answerCount} answer(s)`));
      return item;
    }));
  }

  function answerNode(answer) {
    const node = el("div", "answer" + (answer.accepted ? " accepted" : ""));
    node.dataset.answerId = answer.id;
    node.appendChild(el("div", "answer-body", answer.body));
    const who = answer.author ? answer.author.name : "Someone";
    node.appendChild(el("small", "by", `${who}${answer.byStaff ? " (support)" : ""}`));
    return node;
  }

  async function showThread(id) {
    current = id;
    $("list-view").hidden = true;
    $("thread-view").hidden = false;
    const data = await gql(`query T($id: ID!) { forumThread(id: $id) { ${THREAD_FIELDS} } }`, { id });
    const thread = data.forumThread;
    if (!thread || current !== id) return;
    $("thread-view").dataset.status = thread.status;
    $("thread-title").textContent = thread.title;
    $("thread-title").appendChild(el("span", "status", thread.status));
    $("thread-body").textContent = thread.body;
    const accepted = thread.answers.filter((a) => a.accepted);
    $("accepted").replaceChildren(...accepted.map(answerNode));
    const others = thread.answers.filter((a) => !a.accepted);
    $("answers-heading").textContent = others.length ? "Answers" : accepted.length ? "" : "No answer yet";
    $("answers").replaceChildren(...others.map(answerNode));
  }

  $("ask").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const input = { title: form.get("title"), body: form.get("body") };
    if (!token) Object.assign(input, { email: form.get("email"), name: form.get("name") || null });
    $("ask-error").hidden = true;
    try {
      const data = await gql(`mutation Ask($input: ForumQuestionPostInput!) { forumQuestionPost(input: $input) {
        errors { code message field } thread { id } receipt { reference receivedAt } } }`, { input });
      const payload = data.forumQuestionPost;
      if (payload.errors.length) throw new Error(payload.errors.map((e) => e.message).join(" "));
      event.target.reset();
      $("receipt").hidden = false;
      $("receipt").textContent = `Thanks! Your question is in. Reference: ${payload.receipt.reference}`;
      await showThread(payload.thread.id);
    } catch (error) {
      $("ask-error").hidden = false;
      $("ask-error").textContent = error.message;
    }
  });
  $("back").addEventListener("click", (event) => { event.preventDefault(); $("receipt").hidden = true; showList(); });
  $("refresh").addEventListener("click", () => current && showThread(current));
  setInterval(() => current && showThread(current), 15000); // the forum has no subscription: poll
  showList().catch((error) => { $("threads").replaceChildren(el("li", "error", error.message)); });
})();
