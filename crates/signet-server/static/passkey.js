// Passkeys on Signet's forms. Pages work without this script (codes from the authenticator app);
// with it, forms marked for passkeys get a button that asks the browser for a passkey and posts
// the answer with the form, as an ordinary form post.
//
//   form[data-passkey="get"]     sign-in or step-up: a passkey may stand in for the code
//   form[data-passkey="create"]  registers a new passkey (after the step-up, if one is needed)
//
// The server hands out each ceremony from /passkey/<kind> as {options, state}: the options
// for navigator.credentials, and a sealed state the form posts back unchanged.
'use strict';

(function () {
  // Browsers bind passkeys to a host name and take none for an IP address.
  const ipAddress = /^[\d.]+$/.test(location.hostname) || location.hostname.startsWith('[');
  if (ipAddress || !window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    for (const note of document.querySelectorAll('[data-passkey-unsupported]')) note.hidden = false;
    return;
  }

  async function ceremony(kind) {
    const r = await fetch(`/passkey/${kind}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error('The server could not start the passkey check. Reload the page and try again.');
    return r.json();
  }

  function field(form, name) {
    let input = form.querySelector(`input[name="${name}"]`);
    if (!input) {
      input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  function say(form, text) {
    const out = form.querySelector('[data-passkey-status]');
    if (out) out.textContent = text;
  }

  // A passkey's answer to a fresh challenge, into the form's passkey fields.
  async function answer(form) {
    const { options, state } = await ceremony('challenge');
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    field(form, 'passkey').value = JSON.stringify(credential.toJSON());
    field(form, 'passkey_state').value = state;
  }

  async function create(form) {
    const { options, state } = await ceremony('registration');
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    field(form, 'credential').value = JSON.stringify(credential.toJSON());
    field(form, 'credential_state').value = state;
  }

  async function run(form, button) {
    button.disabled = true;
    say(form, 'Follow your browser\u2019s prompt to use your passkey\u2026');
    try {
      if (form.dataset.passkey === 'create') {
        // Adding a factor is a secure action: confirmed with the code typed, or else with a
        // passkey already registered — asked first, so the new one cannot confirm itself.
        const code = form.querySelector('input[name="code"]');
        if (!code || code.value.trim() === '') await answer(form);
        await create(form);
      } else {
        await answer(form);
      }
      form.submit();
    } catch (e) {
      button.disabled = false;
      say(form, e && e.name === 'NotAllowedError'
        ? 'The passkey was not used (cancelled or timed out). Try again, or enter a code instead.'
        : `The passkey could not be used: ${e && e.message ? e.message : e}`);
    }
  }

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    for (const button of form.querySelectorAll('[data-passkey-button]')) {
      button.hidden = false;
      button.addEventListener('click', (event) => {
        event.preventDefault();
        run(form, button);
      });
    }
  }
})();
