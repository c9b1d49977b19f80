import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import { initApi } from './api'
import { createAppRouter } from './router'

// Pick the transport (Electron preload or HTTP + WebSocket) before anything asks for it;
// in browser mode this also moves the session token from the address bar to sessionStorage.
initApi()

const app = createApp(App)
app.use(createPinia())
app.use(createAppRouter())
app.mount('#app')
